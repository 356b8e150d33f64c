"""Corpus readers and the one table that maps a corpus name to its reader.

    >>> from data_prep.corpora import get_corpus
    >>> corpus = get_corpus("libritts")          # no root: the built-in sample corpus
    >>> utt = next(iter(corpus)); utt.id
    '9000_1_000001_000000'
"""

from __future__ import annotations

import os

from ..errors import CorpusError
from ..sample_corpus import SAMPLE_ROOT
from .base import Corpus, Utterance
from .folder import Folder
from .hf import HFDataset
from .librispeech import LibriSpeech
from .libritts import LibriTTS, LibriTTSR
from .ljspeech import LJSpeech

CORPORA: dict[str, type[Corpus]] = {
    "libritts": LibriTTS,
    "libritts-r": LibriTTSR,
    "librispeech": LibriSpeech,
    "ljspeech": LJSpeech,
    "folder": Folder,
    "hf": HFDataset,
}

_WITH_SUBSETS = (LibriTTS, LibriSpeech)


def get_corpus(
    name: str,
    root: str | os.PathLike | None = None,
    subsets: list[str] | str | None = None,
    **kwargs,
) -> Corpus:
    """Build the reader registered as `name` (case and "_"/"-" do not matter) on `root`.

    subsets: for libritts, libritts-r and librispeech only. `root=None` is allowed for "libritts"
    and means the built-in sample corpus (`data_prep/sample_corpus`). Other keyword arguments go to
    the reader (e.g. `split=`, `text_column=` for "hf"; `language=` for all).
    """
    key = name.strip().lower().replace("_", "-")
    if key not in CORPORA:
        raise CorpusError(f"unknown corpus {name!r}; known corpora: {', '.join(CORPORA)}")
    cls = CORPORA[key]
    if root is None:
        if key != "libritts":
            raise CorpusError(f"corpus {key!r} needs a root path (only 'libritts' has a built-in sample)")
        root = SAMPLE_ROOT
    if subsets is not None:
        if not issubclass(cls, _WITH_SUBSETS):
            raise CorpusError(f"corpus {key!r} has no subsets (got subsets={subsets!r})")
        kwargs["subsets"] = subsets
    return cls(root, **kwargs)


__all__ = ["CORPORA", "Corpus", "CorpusError", "Utterance", "get_corpus"]
