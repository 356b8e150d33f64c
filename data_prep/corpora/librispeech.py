"""LibriSpeech: `<root>/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<n>.flac` with one
`<speaker>-<chapter>.trans.txt` per chapter ("UTTERANCE-ID TRANSCRIPT" lines, upper case, no
punctuation)."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Iterator

from .base import SubsetCorpus, Utterance, file_names

LAYOUT = "<root>/<subset>/<speaker>/<chapter>/*.flac with <speaker>-<chapter>.trans.txt"


class LibriSpeech(SubsetCorpus):
    """LibriSpeech. `root` may hold the subsets directly or a `LibriSpeech` folder; `subsets` picks
    some (default: all, sorted). The transcript is already normalised by the corpus but is given as
    `text` with `normalized_text=None`, since there is no second form to offer."""

    name = "librispeech"
    layout = LAYOUT
    containers = ("LibriSpeech",)
    audio_suffix = ".flac"

    def _chapter(self, subset: str, speaker: str, chapter: Path) -> Iterator[Utterance]:
        names = file_names(chapter)
        trans_name = f"{speaker}-{chapter.name}.trans.txt"
        texts, bad = self._transcripts(chapter / trans_name) if trans_name in names else ({}, {})
        flacs = {n[: -len(".flac")] for n in names if n.endswith(".flac")}
        for utt in sorted(flacs | set(texts) | set(bad)):
            audio = chapter / f"{utt}.flac"
            if utt not in flacs:
                self._skip(audio, "audio file missing (listed in transcript)")
            elif utt in bad:
                self._skip(audio, bad[utt])
            elif utt not in texts:
                self._skip(audio, f"no transcript line in {trans_name}")
            else:
                yield Utterance(
                    id=utt,
                    audio=str(audio),
                    text=texts[utt],
                    normalized_text=None,
                    speaker=speaker,
                    language=self.language,
                    extra={"subset": subset, "chapter": chapter.name},
                )

    @staticmethod
    def _transcripts(path: Path) -> tuple[dict[str, str], dict[str, str]]:
        """-> ({id: text}, {id: reason it is unusable}); decoded line by line so that one bad
        line costs one utterance, not the chapter."""
        texts: dict[str, str] = {}
        bad: dict[str, str] = {}
        try:
            raw = path.read_bytes().removeprefix(codecs.BOM_UTF8)  # else the first id starts with the BOM
        except OSError:
            return texts, bad
        for lineno, line in enumerate(raw.splitlines(), 1):
            key, _, rest = line.strip().partition(b" ")
            if not key:
                continue
            utt = key.decode("ascii", errors="replace")
            try:
                texts[utt] = rest.decode("utf-8").strip()
            except UnicodeDecodeError:
                bad[utt] = f"{path.name} line {lineno} is not valid UTF-8"
        return texts, bad
