"""LibriTTS and LibriTTS-R: `<root>/<subset>/<speaker>/<chapter>/<utt>.wav` with `<utt>.original.txt`
(book text) and `<utt>.normalized.txt` (numbers and abbreviations spelled out)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from ..errors import CorpusError
from .base import (
    DEFAULT_LANGUAGE,
    Corpus,
    Utterance,
    file_names,
    find_subsets,
    read_text,
    require_dir,
    select_subsets,
    sorted_dirs,
)

LAYOUT = "<root>/<subset>/<speaker>/<chapter>/<utt>.wav with <utt>.normalized.txt and <utt>.original.txt"


class LibriTTS(Corpus):
    """LibriTTS. `root` may hold the subsets (`dev-clean`, ...) directly or a `LibriTTS` folder;
    `subsets` picks some of them (default: every subset found, sorted by name).

    When only one of the two transcripts exists, `text` falls back to the normalised one and
    `normalized_text` is None when there is no `.normalized.txt`. Utterances with neither are skipped.
    """

    name = "libritts"
    containers: tuple[str, ...] = ("LibriTTS", "LibriTTS_R")

    def __init__(
        self,
        root: str | os.PathLike,
        subsets: list[str] | str | None = None,
        language: str = DEFAULT_LANGUAGE,
    ) -> None:
        super().__init__(root, language)
        require_dir(self.root, self.name, LAYOUT)
        self.data_root, self.available_subsets = find_subsets(self.root, self.containers, ".wav")
        if not self.available_subsets:
            raise CorpusError(
                f"no {self.name} subset folders under {self.root}; expected {LAYOUT} "
                "(if this is a subset folder itself, pass its parent as root)"
            )
        self.subset_dirs = select_subsets(self.available_subsets, subsets, self.name, self.data_root)

    @property
    def subsets(self) -> list[str]:
        """Names of the subsets this reader iterates."""
        return [d.name for d in self.subset_dirs]

    def _utterances(self) -> Iterator[Utterance]:
        for subset in self.subset_dirs:
            for speaker in sorted_dirs(subset):
                for chapter in sorted_dirs(speaker):
                    yield from self._chapter(subset.name, speaker.name, chapter)

    def _chapter(self, subset: str, speaker: str, chapter: Path) -> Iterator[Utterance]:
        names = file_names(chapter)
        for wav in sorted(n for n in names if n.endswith(".wav")):
            utt = wav[: -len(".wav")]
            texts: dict[str, str | None] = {}
            failed = None
            for kind in ("original", "normalized"):
                fname = f"{utt}.{kind}.txt"
                if fname in names:
                    texts[kind], reason = read_text(chapter / fname)
                    failed = failed or reason
            if failed:
                self._skip(chapter / wav, failed)
                continue
            if not texts:
                self._skip(chapter / wav, f"no transcript ({utt}.original.txt / {utt}.normalized.txt)")
                continue
            normalized = texts.get("normalized")
            yield Utterance(
                id=utt,
                audio=str(chapter / wav),
                text=texts.get("original", normalized),
                normalized_text=normalized,
                speaker=speaker,
                language=self.language,
                extra={"subset": subset, "chapter": chapter.name},
            )


class LibriTTSR(LibriTTS):
    """LibriTTS-R (restored LibriTTS): same layout, usually unpacked into a `LibriTTS_R` folder."""

    name = "libritts-r"
    containers = ("LibriTTS_R", "LibriTTS")
