"""The text front-end shared by TTS training and synthesis: text -> normalised text -> phonemes -> ids.

Training reads phoneme ids that `tokenize-corpus` wrote with `data_prep.text` (normalise, phonemize with
espeak-ng, encode with the corpus's `phonemes.json`). Synthesis must turn new text into ids the same way
and with the same vocabulary, so this module calls the same `data_prep.text` functions and the vocabulary
travels inside the model export. Where the two could silently differ it refuses instead: a phoneme that
the vocabulary lacks is an error naming it (the corpus encoder maps it to `<unk>`, a model never saw it).
"""

from __future__ import annotations

import logging
from typing import Sequence

from data_prep.text.normalize import normalize_text
from data_prep.text.phonemize import PUNCTUATION, WORD_SEPARATOR, phonemize
from data_prep.text.vocab import SPECIAL_TOKENS, PhonemeVocab, split_phones

from .errors import TTSError

logger = logging.getLogger(__name__)


class TextFrontend:
    """`encode(text) -> list[int]` phoneme ids in `vocab`, for the espeak `language` of the corpus."""

    def __init__(self, vocab: PhonemeVocab, language: str = "en-us"):
        self.vocab, self.language = vocab, language

    @property
    def word_boundary_id(self) -> int:
        return self.vocab.index[WORD_SEPARATOR]

    def phonemes(self, texts: Sequence[str]) -> list[str]:
        """Phoneme strings (format of `data_prep.text.phonemize`) of `texts`; TTSError names an empty text
        or one that phonemizes to nothing."""
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise TTSError(f"empty text {text!r}: nothing to synthesize")
        normalized = [normalize_text(t, self.language) for t in texts]
        out = phonemize(normalized, self.language)
        for text, phones in zip(texts, out):
            if not phones or all(t == WORD_SEPARATOR or t in PUNCTUATION for t in split_phones(phones)):
                raise TTSError(f"text {text!r} phonemizes to nothing")
        return out

    def ids_of_phonemes(self, phonemes: str, text: str | None = None) -> list[int]:
        """Ids of a phoneme string; TTSError names the first phoneme the vocabulary lacks."""
        tokens = split_phones(phonemes)
        for token in tokens:
            if token not in self.vocab.index or token in SPECIAL_TOKENS:
                where = f" (text {text!r})" if text is not None else ""
                raise TTSError(f"phoneme {token!r}{where} is not in the model's phoneme vocabulary "
                               f"({len(self.vocab)} tokens)")
        return [self.vocab.index[t] for t in tokens]

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Phoneme ids of each text (one espeak batch for all)."""
        return [self.ids_of_phonemes(p, t) for t, p in zip(texts, self.phonemes(texts))]

    def join(self, first: Sequence[int], second: Sequence[int]) -> list[int]:
        """Ids of two utterances read one after the other (prompt text, then the text), a word boundary
        between them, as in training's cross-sentence prompts."""
        return [*first, self.word_boundary_id, *second]
