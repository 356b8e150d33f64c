"""LibriTTS and LibriTTS-R: `<root>/<subset>/<speaker>/<chapter>/<utt>.wav` with `<utt>.original.txt`
(book text) and `<utt>.normalized.txt` (numbers and abbreviations spelled out)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from .base import SubsetCorpus, Utterance, file_names, read_text

LAYOUT = "<root>/<subset>/<speaker>/<chapter>/<utt>.wav with <utt>.normalized.txt and <utt>.original.txt"


class LibriTTS(SubsetCorpus):
    """LibriTTS. `root` may hold the subsets (`dev-clean`, ...) directly or a `LibriTTS` folder;
    `subsets` picks some of them (default: every subset found, sorted by name).

    When only one of the two transcripts exists, `text` falls back to the normalised one and
    `normalized_text` is None when there is no `.normalized.txt`. Utterances with neither are skipped.
    """

    name = "libritts"
    layout = LAYOUT
    containers = ("LibriTTS", "LibriTTS_R")
    audio_suffix = ".wav"

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
