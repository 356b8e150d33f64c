"""Moved to `tokenizer.utils.errors` (the toolkit's foundation); this name keeps old imports working.
`from tokenizer import CodecError` is the stable way to reach the error types."""

import warnings

from .utils.errors import AudioError, CodecError, ConfigError, ToolkitError  # noqa: F401

warnings.warn("tokenizer.errors moved to tokenizer.utils.errors; import from there (or from tokenizer)",
              DeprecationWarning, stacklevel=2)
