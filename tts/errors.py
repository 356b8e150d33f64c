"""The error users of `tts` can cause: a `CodecError`, so `run_cli` prints it as one line and exits 2."""

from tokenizer.errors import CodecError


class TTSError(CodecError):
    """Bad TTS input: empty text, a phoneme the model's vocabulary lacks, an unreadable or too long prompt,
    shards without phonemes, an export without a codec record, a codec mismatch. Names the value."""
