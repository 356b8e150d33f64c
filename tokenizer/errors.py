"""Moved to `tokenizer.utils.errors` (the toolkit's foundation); this name keeps old imports working.
`from tokenizer import CodecError` is the stable way to reach the error types."""

from .utils.errors import AudioError, CodecError, ConfigError, ToolkitError  # noqa: F401
