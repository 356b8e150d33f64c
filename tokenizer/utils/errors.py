"""The one exception type users catch: every error a user can cause raises `ToolkitError` or a subclass.

`CodecError` is the same class under its first name (the toolkit began as codecs), so `except CodecError`
in user code catches everything it did before, corpus and TTS errors included.
"""


class ToolkitError(ValueError):
    """Bad input to the toolkit: an unreadable file, empty or non-finite audio, a wrong rank,
    an unknown codec name, codes outside the codebook, an unsupported quantizer count, a corpus laid out
    wrongly, TTS input the model cannot take...

    The message always names the offending value (path, shape, name or number).
    """


CodecError = ToolkitError  # the first name of the root error, kept: `except CodecError` catches everything


class AudioError(ToolkitError):
    """Audio that cannot be read or used: unreadable file, empty, NaN/inf, wrong rank."""


class ConfigError(ToolkitError):
    """A configuration value that the toolkit cannot honour (unknown name, unsupported count)."""
