"""Phoneme vocabulary: phoneme strings (as `phonemize` writes them) <-> integer ids.

Ids: `<pad>`=0, `<unk>`=1, `<bos>`=2, `<eos>`=3, the word boundary " "=4, then every phone and
punctuation mark seen at build time, sorted. Saved as versioned JSON (`phonemes.json`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import CorpusError
from .phonemize import PHONE_SEPARATOR, PUNCTUATION, WORD_SEPARATOR

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)
FILE_NAME = "phonemes.json"
FORMAT, VERSION = "phoneme-vocab", 1


def split_phones(phonemes: str) -> list[str]:
    """"h|ə|l|ˈoʊ, w|ˈɜː|l|d!" -> ["h", "ə", "l", "ˈoʊ", ",", " ", "w", "ˈɜː", "l", "d", "!"].

    Words are joined by a " " token; punctuation marks become tokens of their own.
    """
    tokens: list[str] = []
    for word in phonemes.split(WORD_SEPARATOR):
        if not word:
            continue
        if tokens:
            tokens.append(WORD_SEPARATOR)
        for phone in word.split(PHONE_SEPARATOR):
            current = ""
            for ch in phone:
                if ch in PUNCTUATION:
                    if current:
                        tokens.append(current)
                        current = ""
                    tokens.append(ch)
                else:
                    current += ch
            if current:
                tokens.append(current)
    return tokens


def join_phones(tokens: Sequence[str]) -> str:
    """Inverse of `split_phones`: phones of one word are joined by "|", punctuation attaches as is."""
    out: list[str] = []
    previous_is_phone = False
    for token in tokens:
        is_phone = token != WORD_SEPARATOR and token not in PUNCTUATION
        if is_phone and previous_is_phone:
            out.append(PHONE_SEPARATOR)
        out.append(token)
        previous_is_phone = is_phone
    return "".join(out)


class PhonemeVocab:
    """Token list with fixed special ids; `encode(phonemes) -> list[int]`, `decode(ids) -> str`."""

    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3

    def __init__(self, tokens: Sequence[str]) -> None:
        if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS or WORD_SEPARATOR not in tokens:
            raise CorpusError(f"a phoneme vocabulary must start with {SPECIAL_TOKENS} and hold the word boundary ' '")
        if len(set(tokens)) != len(tokens):
            raise CorpusError("a phoneme vocabulary has duplicate tokens")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, sequences: Iterable[str | None], min_count: int = 1) -> "PhonemeVocab":
        """From phoneme strings (None entries, i.e. failed phonemizations, are ignored); phones seen
        fewer than `min_count` times are left out and will encode as `<unk>`."""
        counts = Counter(t for s in sequences if s for t in split_phones(s) if t != WORD_SEPARATOR)
        phones = sorted(t for t, c in counts.items() if c >= min_count and t not in SPECIAL_TOKENS)
        return cls([*SPECIAL_TOKENS, WORD_SEPARATOR, *phones])

    def __len__(self) -> int:
        return len(self.tokens)

    def digest(self) -> str:
        """sha256 (16 hex digits) of the token list: equal digests, equal ids for every phone."""
        return hashlib.sha256(json.dumps(self.tokens, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]

    def encode(self, phonemes: str, add_bos_eos: bool = False) -> list[int]:
        """Phoneme string -> ids; unknown phones map to `unk_id`."""
        ids = [self.index.get(t, self.unk_id) for t in split_phones(phonemes)]
        return [self.bos_id, *ids, self.eos_id] if add_bos_eos else ids

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> phoneme string; `<pad>`, `<bos>`, `<eos>` are dropped, `<unk>` is kept as text."""
        tokens = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise CorpusError(f"phoneme id {i} is outside the vocabulary (size {len(self.tokens)})")
            if i not in (self.pad_id, self.bos_id, self.eos_id):
                tokens.append(self.tokens[i])
        return join_phones(tokens)

    def save(self, path: str | os.PathLike) -> Path:
        """Write JSON to `path` (a folder gets `phonemes.json` inside). Returns the file's path."""
        path = Path(path)
        if path.is_dir():
            path = path / FILE_NAME
        payload = {"format": FORMAT, "version": VERSION, "phone_separator": PHONE_SEPARATOR,
                   "word_separator": WORD_SEPARATOR, "tokens": self.tokens}
        path.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PhonemeVocab":
        """Read a file written by `save` (or a folder holding `phonemes.json`)."""
        path = Path(path)
        if path.is_dir():
            path = path / FILE_NAME
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorpusError(f"cannot read phoneme vocabulary {path}: {exc}") from exc
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise CorpusError(f"{path} is not a phoneme vocabulary (no \"format\": \"{FORMAT}\")")
        if payload.get("version") != VERSION:
            raise CorpusError(f"{path} has phoneme vocabulary version {payload.get('version')}; this code reads {VERSION}")
        return cls(payload["tokens"])
