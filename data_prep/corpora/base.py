"""The contract every corpus reader follows, and the small file helpers they share.

A corpus never decodes audio while listing it (listing LibriTTS's ~375k files must stay fast):
an unreadable audio file is yielded like any other and surfaces as `tokenizer.AudioError`
when `tokenizer.audio.load_audio` reads it.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import CorpusError

logger = logging.getLogger(__name__)

DEFAULT_LANGUAGE = "en-us"
# Record fields the pipeline sets itself (from the Utterance, the audio and the codes). An `extra` key of
# the same name, such as a NeMo-style manifest's `duration` column, is dropped: it would override the
# computed value (a 5.5 s clip recorded as 99 s) or abort the run when it disagrees with the codes.
RESERVED_EXTRA = frozenset({"id", "speaker", "text", "normalized_text", "language", "phonemes",
                            "duration", "num_frames", "num_samples"})


@dataclass
class Utterance:
    """One recording and what the corpus says about it.

    audio: a file path, or the encoded file's bytes (hf corpus); read it with `tokenizer.audio.load_audio`.
    text: the transcript as given ("" when the corpus has none for this file).
    normalized_text: the corpus's own normalised transcript, None when it gives none.
    language: espeak-ng language code ("en-us", "fr-fr", ...).
    extra: anything else the corpus gives (subset, chapter, source path...), never a `RESERVED_EXTRA`
        name: the base class drops those, with one warning per name and pass.
    """

    id: str
    audio: str | bytes
    text: str
    normalized_text: str | None
    speaker: str
    language: str = DEFAULT_LANGUAGE
    extra: dict[str, Any] = field(default_factory=dict)


class Corpus(ABC):
    """Base of every corpus reader.

    The constructor checks `root` at once and raises `CorpusError` naming the path and the layout it
    expected. Iterating yields `Utterance`s in a deterministic (sorted) order; entries that cannot be
    used (missing transcript, non-UTF-8 text, missing audio) are not yielded but recorded in
    `skipped` as `(item, reason)`, rebuilt on every pass. Fields the pipeline computes
    (`RESERVED_EXTRA`: duration, num_frames, num_samples, phonemes...) are removed from `extra`.
    """

    name: str = ""

    def __init__(self, root: str | os.PathLike, language: str = DEFAULT_LANGUAGE) -> None:
        self.root = Path(root).expanduser()
        self.language = language
        self.skipped: list[tuple[str, str]] = []

    def __iter__(self) -> Iterator[Utterance]:
        self.skipped = []
        warned: set[str] = set()
        for utt in self._utterances():
            clash = RESERVED_EXTRA.intersection(utt.extra)
            if clash:
                for key in sorted(clash - warned):
                    logger.warning("%s: ignoring the %r field the corpus gives (first for %s): the pipeline "
                                   "computes %s itself", self.name, key, utt.id, key)
                warned |= clash
                utt.extra = {k: v for k, v in utt.extra.items() if k not in RESERVED_EXTRA}
            yield utt

    @abstractmethod
    def _utterances(self) -> Iterator[Utterance]:
        """Yield the corpus's utterances in sorted order, calling `_skip` for unusable entries."""

    def _skip(self, item: str | os.PathLike, reason: str) -> None:
        self.skipped.append((str(item), reason))
        logger.debug("%s: skipped %s: %s", self.name, item, reason)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r})"


def require_dir(path: Path, corpus: str, expected: str) -> None:
    """Raise `CorpusError` unless `path` is an existing directory."""
    if not path.exists():
        raise CorpusError(f"{corpus} root {path} does not exist; expected {expected}")
    if not path.is_dir():
        raise CorpusError(f"{corpus} root {path} is not a directory; expected {expected}")


def read_text(path: Path) -> tuple[str | None, str | None]:
    """Read a small UTF-8 text file -> `(text, None)`, or `(None, reason)` when it cannot be decoded
    or read. A byte-order mark is dropped; surrounding whitespace is stripped."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror or exc}"
    try:
        return raw.decode("utf-8-sig").strip(), None
    except UnicodeDecodeError as exc:
        return None, f"{path.name} is not valid UTF-8 (byte {exc.start})"


def sorted_dirs(path: Path) -> list[Path]:
    """Subdirectories of `path`, sorted by name; [] when it cannot be listed."""
    try:
        with os.scandir(path) as it:
            return sorted((Path(e.path) for e in it if e.is_dir()), key=lambda p: p.name)
    except OSError:
        return []


def file_names(path: Path) -> set[str]:
    """Names of the regular files in `path` (one listing, so lookups need no further stat calls)."""
    try:
        with os.scandir(path) as it:
            return {e.name for e in it if e.is_file()}
    except OSError:
        return set()


def find_subsets(
    root: Path, containers: tuple[str, ...], audio_suffix: str
) -> tuple[Path, dict[str, Path]]:
    """Locate the folder holding `<subset>/<speaker>/<chapter>/*<audio_suffix>` trees.

    Tries `root` itself, then `root/<container>` for each container name (e.g. "LibriTTS"), and
    returns the first that has subsets as `(data_root, {subset name: path})`; `(root, {})` if none.
    """
    for candidate in (root, *(root / c for c in containers)):
        subsets = {d.name: d for d in sorted_dirs(candidate) if _looks_like_subset(d, audio_suffix)}
        if subsets:
            return candidate, subsets
    return root, {}


def _looks_like_subset(path: Path, audio_suffix: str) -> bool:
    # A real subset has audio in practically every chapter, so peeking at a few is enough and keeps
    # a wrong root (e.g. a subset folder passed as root) from triggering a scan of the whole tree.
    for speaker in sorted_dirs(path)[:3]:
        for chapter in sorted_dirs(speaker)[:3]:
            if any(n.endswith(audio_suffix) for n in file_names(chapter)):
                return True
    return False


def select_subsets(
    available: dict[str, Path], wanted: list[str] | str | None, corpus: str, data_root: Path
) -> list[Path]:
    """Pick the requested subsets (all of them, sorted, when `wanted` is None)."""
    if wanted is None:
        return [available[k] for k in sorted(available)]
    if isinstance(wanted, str):
        wanted = [wanted]
    unknown = [w for w in wanted if w not in available]
    if unknown:
        raise CorpusError(
            f"unknown {corpus} subset {', '.join(map(repr, unknown))} under {data_root}; "
            f"available: {', '.join(sorted(available))}"
        )
    return [available[w] for w in dict.fromkeys(wanted)]


class SubsetCorpus(Corpus):
    """A `<root>/<subset>/<speaker>/<chapter>/` tree (LibriTTS, LibriSpeech): finds and selects the
    subsets, walks speakers and chapters in sorted order, and leaves one chapter's files to `_chapter`.

    Subclasses set `layout` (for error messages), `containers` (folder names the subsets may sit in)
    and `audio_suffix`.
    """

    layout: str = ""
    containers: tuple[str, ...] = ()
    audio_suffix: str = ".wav"

    def __init__(self, root: str | os.PathLike, subsets: list[str] | str | None = None,
                 language: str = DEFAULT_LANGUAGE) -> None:
        super().__init__(root, language)
        require_dir(self.root, self.name, self.layout)
        self.data_root, self.available_subsets = find_subsets(self.root, self.containers, self.audio_suffix)
        if not self.available_subsets:
            raise CorpusError(
                f"no {self.name} subset folders under {self.root}; expected {self.layout} "
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

    @abstractmethod
    def _chapter(self, subset: str, speaker: str, chapter: Path) -> Iterator[Utterance]:
        """Utterances of one chapter folder."""
