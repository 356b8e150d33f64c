"""Any folder of audio files, or a JSONL / CSV / TSV manifest listing them.

Folder: every file under `root` (recursive) whose extension is one of a format libsndfile reads
(`tokenizer.audio.readable_suffixes()`: .wav, .flac, .ogg, .opus, .mp3, .aiff, .aif, .wave, .caf, .w64...);
the transcript is the file of the same name with `.txt` (else `.lab`). Other files (not transcripts, not
hidden) are left out with one warning giving their count and a few names, e.g. `.m4a` files to convert. Manifest: one row per utterance with columns `audio`
(a path relative to the manifest's folder, or absolute), `text`, and optionally `speaker`,
`language`, `id`, `normalized_text`; other columns go to `Utterance.extra`, except those named like a
field the pipeline computes (`duration`, `num_frames`, `num_samples`, `phonemes`): they are ignored with
one warning, so a manifest's `duration` never overrides the duration measured from the audio.

An audio file without a transcript (no `.txt`/`.lab`, or an empty/missing `text` field) is still
yielded, with `text=""`: tokenizing audio alone is legitimate, and consumers that need text can
filter on it. Only unreadable entries (non-UTF-8 text, missing audio file, bad manifest row,
duplicate id) are skipped.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator

from tokenizer.audio import readable_suffixes

from ..errors import CorpusError
from .base import DEFAULT_LANGUAGE, Corpus, Utterance, read_text, require_dir

logger = logging.getLogger(__name__)

TRANSCRIPT_SUFFIXES = (".txt", ".lab")
MANIFEST_SUFFIXES = (".jsonl", ".csv", ".tsv")
DEFAULT_SPEAKER = "default"
_KNOWN_COLUMNS = {"audio", "text", "normalized_text", "speaker", "language", "id"}
LAYOUT = (
    "a folder of audio files libsndfile reads (wav/flac/ogg/opus/mp3/aiff...; with optional same-name .txt/.lab "
    f"transcripts) or a {'/'.join(s[1:] for s in MANIFEST_SUFFIXES)} manifest with an 'audio' column"
)


class Folder(Corpus):
    """A folder of audio files or a manifest file (see the module docstring).

    Folder mode: id = path relative to `root` without suffix, "/" replaced by "_"; speaker = the
    first folder under `root` ("default" for files directly in `root`); sorted by relative path.
    Manifest mode: rows in file order; id defaults to the audio path as in folder mode, relative to the
    manifest's folder, or for files outside it relative to the deepest folder holding all of those
    (`/data/spk1/0001.wav` and `/data/spk2/0001.wav` -> `spk1_0001`, `spk2_0001`).
    """

    name = "folder"

    def __init__(self, root: str | os.PathLike, language: str = DEFAULT_LANGUAGE) -> None:
        super().__init__(root, language)
        self.is_manifest = self.root.is_file()
        if self.is_manifest:
            if self.root.suffix.lower() not in MANIFEST_SUFFIXES:
                raise CorpusError(f"{self.root} is a file but not a manifest; expected {LAYOUT}")
            self._check_manifest_columns()
        else:
            require_dir(self.root, self.name, LAYOUT)
            others: list[Path] = []
            if next(self._audio_files(others), None) is None:
                found = f" (only {_some(others, self.root)})" if others else ""
                raise CorpusError(f"no audio files under {self.root}{found}; expected {LAYOUT}")

    def _utterances(self) -> Iterator[Utterance]:
        seen: set[str] = set()
        source = self._manifest_utterances() if self.is_manifest else self._folder_utterances()
        for utt in source:
            if utt.id in seen:
                self._skip(utt.audio, f"duplicate id {utt.id!r}")
                continue
            seen.add(utt.id)
            yield utt

    # -- folder mode --------------------------------------------------------------------------

    def _audio_files(self, others: list[Path] | None = None) -> Iterator[Path]:
        """Audio files in sorted order; other files that are not transcripts or hidden go to `others`."""
        suffixes = readable_suffixes()
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()  # os.walk visits subfolders in this (now sorted) order
            for name in sorted(filenames):
                suffix = os.path.splitext(name)[1].lower()
                if suffix in suffixes:
                    yield Path(dirpath) / name
                elif others is not None and suffix not in TRANSCRIPT_SUFFIXES and not name.startswith("."):
                    others.append(Path(dirpath) / name)

    def _folder_utterances(self) -> Iterator[Utterance]:
        others: list[Path] = []
        yield from self._folder_files(others)
        if others:
            logger.warning("%s: left out %d files under %s that are not audio libsndfile reads: %s",
                           self.name, len(others), self.root, _some(others, self.root))

    def _folder_files(self, others: list[Path]) -> Iterator[Utterance]:
        for path in self._audio_files(others):
            rel = path.relative_to(self.root)
            text = ""
            for suffix in (".txt", ".lab"):
                transcript = path.with_suffix(suffix)
                if transcript.is_file():
                    text, reason = read_text(transcript)
                    break
            else:
                reason = None
            if reason:
                self._skip(path, reason)
                continue
            yield Utterance(
                id=_path_id(rel),
                audio=str(path),
                text=text,
                normalized_text=None,
                speaker=rel.parts[0] if len(rel.parts) > 1 else DEFAULT_SPEAKER,
                language=self.language,
                extra={"path": rel.as_posix()},
            )

    # -- manifest mode ------------------------------------------------------------------------

    def _rows(self) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
        """Yield `(line number, row, None)` or `(line number, None, reason)` for each data row."""
        lines = self.root.read_bytes().splitlines(keepends=True)
        if self.root.suffix.lower() == ".jsonl":
            for lineno, raw in enumerate(lines, 1):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw.decode("utf-8-sig"))
                except UnicodeDecodeError:
                    yield lineno, None, f"line {lineno} is not valid UTF-8"
                    continue
                except json.JSONDecodeError as exc:
                    yield lineno, None, f"line {lineno} is not valid JSON: {exc.msg}"
                    continue
                if not isinstance(row, dict):
                    yield lineno, None, f"line {lineno} is not a JSON object"
                    continue
                yield lineno, row, None
            return
        # csv: decode line by line so one bad line costs one row; the numbering counts file lines.
        decoded: list[tuple[int, str]] = []
        for lineno, raw in enumerate(lines, 1):
            try:
                decoded.append((lineno, raw.decode("utf-8-sig")))
            except UnicodeDecodeError:
                yield lineno, None, f"line {lineno} is not valid UTF-8"
        delimiter = "\t" if self.root.suffix.lower() == ".tsv" else ","
        reader = csv.DictReader((text for _, text in decoded), delimiter=delimiter)
        linenos = iter(n for n, _ in decoded[1:])
        for row in reader:
            yield next(linenos, 0), {k: v for k, v in row.items() if k is not None}, None

    def _check_manifest_columns(self) -> None:
        for _, row, _ in self._rows():
            if row is not None:
                if "audio" not in row:
                    raise CorpusError(
                        f"manifest {self.root} has no 'audio' column (columns: {', '.join(map(str, row))}); "
                        f"expected {LAYOUT}"
                    )
                return
        raise CorpusError(f"manifest {self.root} has no usable rows; expected {LAYOUT}")

    def _audio_path(self, row: dict[str, Any]) -> Path | None:
        audio = str(row.get("audio") or "").strip()
        if not audio:
            return None
        path = Path(audio).expanduser()
        return path if path.is_absolute() else self.root.parent / path

    def _outside_root(self) -> Path | None:
        """The deepest folder holding every listed file outside the manifest's folder (None if none is)."""
        outside = []
        for _, row, _ in self._rows():
            path = self._audio_path(row) if row is not None else None
            if path is not None and not path.is_relative_to(self.root.parent):
                outside.append(str(path.parent))
        return Path(os.path.commonpath(outside)) if outside else None

    def _manifest_utterances(self) -> Iterator[Utterance]:
        base = self.root.parent
        # Ids of files outside the manifest's folder are their paths relative to the folder that holds
        # them all: the bare file name would make spk1/0001.wav and spk2/0001.wav collide.
        outside_root = self._outside_root()
        for lineno, row, reason in self._rows():
            item = f"{self.root}:{lineno}"
            if row is None:
                self._skip(item, reason)
                continue
            path = self._audio_path(row)
            if path is None:
                self._skip(item, f"line {lineno} has no audio path")
                continue
            if not path.is_file():
                self._skip(item, f"audio file not found: {path}")
                continue
            inside = path.is_relative_to(base)
            default_id = _path_id(path.relative_to(base if inside or outside_root is None else outside_root))
            yield Utterance(
                id=_field(row, "id") or default_id,
                audio=str(path),
                text=_field(row, "text") or "",
                normalized_text=_field(row, "normalized_text"),
                speaker=_field(row, "speaker") or DEFAULT_SPEAKER,
                language=_field(row, "language") or self.language,
                extra={k: v for k, v in row.items() if k not in _KNOWN_COLUMNS},
            )


def _some(paths: list[Path], root: Path | None = None, shown: int = 3) -> str:
    """'a.m4a, b.wma, c.mp4 and 5 more' (relative to `root` when given)."""
    names = [(p.relative_to(root) if root else p).as_posix() for p in paths[:shown]]
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(names) + more


def _path_id(rel: Path) -> str:
    return rel.with_suffix("").as_posix().replace("/", "_")


def _field(row: dict[str, Any], key: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    value = str(value).strip()
    return value or None
