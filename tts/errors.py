"""The error users of `tts` can cause: a `CodecError`, so `run_cli` prints it as one line and exits 2; and
`check_writable`, which finds an unwritable output folder before any work is done."""

import errno
import os
import tempfile
from pathlib import Path

from tokenizer.utils.errors import CodecError


class TTSError(CodecError):
    """Bad TTS input: empty text, a phoneme the model's vocabulary lacks, an unreadable or too long prompt,
    shards without phonemes, an export without a codec record, a codec mismatch. Names the value."""


def check_writable(folder: str | os.PathLike, what: str) -> None:
    """Create `folder` (and its parents) and a file in it, so that a read-only mount, a missing permission or
    a file in the way is one line (TTSError naming `what`, e.g. "--out-dir gen") before any model runs,
    not a traceback after it. A full disk is left to `run_cli` (its "disk full" line)."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise TTSError(f"{what}: cannot write in {folder} ({exc.strerror or exc})") from None
