"""Moved to `tokenizer.utils.cli` (the toolkit's foundation); this name keeps old imports working."""

from .utils.cli import configure_logging, fail, quiet_progress_bars, run_cli  # noqa: F401
