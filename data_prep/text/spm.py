"""Optional SentencePiece subword model over corpus text (for text-token TTS front-ends).

Special ids match the phoneme vocabulary: `<pad>`=0, `<unk>`=1, `<bos>`=2, `<eos>`=3.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ..errors import CorpusError


def train_sentencepiece(
    texts: Iterable[str],
    out_prefix: str | os.PathLike,
    vocab_size: int = 1000,
    model_type: str = "unigram",
) -> Path:
    """Train on `texts` (one sentence each) and write `<out_prefix>.model` / `.vocab`.

    `vocab_size` is an upper bound (`hard_vocab_limit=False`), so a small corpus yields a smaller
    model instead of failing. Returns the `.model` path.
    """
    import sentencepiece as spm

    prefix = Path(out_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    sentences = [t.strip() for t in texts if t and t.strip()]
    if not sentences:
        raise CorpusError(f"no text to train a sentencepiece model on (out_prefix={prefix})")
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_prefix=str(prefix),
            vocab_size=vocab_size,
            model_type=model_type,
            hard_vocab_limit=False,
            character_coverage=1.0,
            pad_id=0, unk_id=1, bos_id=2, eos_id=3,
            minloglevel=2,  # its INFO log is hundreds of lines
        )
    except RuntimeError as exc:
        raise CorpusError(f"sentencepiece training for {prefix} failed: {exc}") from exc
    return prefix.with_name(prefix.name + ".model")


def load_sentencepiece(path: str | os.PathLike):
    """Load a `.model` file -> `sentencepiece.SentencePieceProcessor`
    (`.encode(text) -> list[int]`, `.decode(ids) -> str`)."""
    import sentencepiece as spm

    if not Path(path).is_file():
        raise CorpusError(f"sentencepiece model not found: {path}")
    return spm.SentencePieceProcessor(model_file=str(path))


def encode_texts(model, texts: Iterable[str]) -> list[list[int]]:
    """Encode each text with a loaded model -> one id list per text."""
    return [model.encode(t) for t in texts]
