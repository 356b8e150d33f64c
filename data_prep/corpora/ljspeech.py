"""LJSpeech: `<root>/wavs/<id>.wav` and `<root>/metadata.csv` with `id|transcription|normalized
transcription` lines; one speaker, "LJ"."""

from __future__ import annotations

import codecs
import os
from typing import Iterator

from ..errors import CorpusError
from .base import DEFAULT_LANGUAGE, Corpus, Utterance, file_names, require_dir

LAYOUT = "<root>/metadata.csv (id|text|normalized text) and <root>/wavs/<id>.wav"


class LJSpeech(Corpus):
    """LJSpeech-1.1. `root` is the folder with `metadata.csv` and `wavs/` or its parent holding
    `LJSpeech-1.1/`. Wav files without a metadata line are skipped, and so are lines without a
    wav file."""

    name = "ljspeech"

    def __init__(self, root: str | os.PathLike, language: str = DEFAULT_LANGUAGE) -> None:
        super().__init__(root, language)
        require_dir(self.root, self.name, LAYOUT)
        if not (self.root / "metadata.csv").is_file() and (self.root / "LJSpeech-1.1").is_dir():
            self.root = self.root / "LJSpeech-1.1"
        missing = [p for p in ("metadata.csv", "wavs") if not (self.root / p).exists()]
        if missing:
            raise CorpusError(f"no {' or '.join(missing)} under {self.root}; expected {LAYOUT}")

    def _utterances(self) -> Iterator[Utterance]:
        wav_dir = self.root / "wavs"
        wavs = {n[: -len(".wav")] for n in file_names(wav_dir) if n.endswith(".wav")}
        rows: dict[str, tuple[str, str | None]] = {}
        bad: dict[str, str] = {}
        # Split by hand rather than with `csv`: the transcripts contain unbalanced double quotes
        # that a csv reader would treat as quoting.
        # The BOM goes before the split: left on the first key, it would cost the first utterance.
        raw = (self.root / "metadata.csv").read_bytes().removeprefix(codecs.BOM_UTF8)
        for lineno, line in enumerate(raw.splitlines(), 1):
            key = line.partition(b"|")[0].strip().decode("ascii", errors="replace")
            if not key:
                continue
            try:
                fields = line.decode("utf-8").split("|")
            except UnicodeDecodeError:
                bad[key] = f"metadata.csv line {lineno} is not valid UTF-8"
                continue
            if len(fields) < 2:
                bad[key] = f"metadata.csv line {lineno} has no transcript field"
                continue
            normalized = fields[2].strip() if len(fields) > 2 and fields[2].strip() else None
            rows[key] = (fields[1].strip(), normalized)
        for utt in sorted(wavs | set(rows) | set(bad)):
            audio = wav_dir / f"{utt}.wav"
            if utt not in wavs:
                self._skip(audio, "audio file missing (listed in metadata.csv)")
            elif utt in bad:
                self._skip(audio, bad[utt])
            elif utt not in rows:
                self._skip(audio, "no line in metadata.csv")
            else:
                text, normalized = rows[utt]
                yield Utterance(
                    id=utt,
                    audio=str(audio),
                    text=text,
                    normalized_text=normalized,
                    speaker="LJ",
                    language=self.language,
                )
