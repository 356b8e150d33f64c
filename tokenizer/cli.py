"""Moved to `tokenizer.utils.cli` (the toolkit's foundation); this name keeps old imports working."""

import warnings

from .utils.cli import configure_logging, fail, quiet_progress_bars, run_cli  # noqa: F401

warnings.warn("tokenizer.cli moved to tokenizer.utils.cli; import from there (or from tokenizer)",
              DeprecationWarning, stacklevel=2)
