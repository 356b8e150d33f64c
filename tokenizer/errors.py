"""The one exception type users catch: every error a user can cause raises a subclass of it."""


class CodecError(ValueError):
    """Bad input to the toolkit: an unreadable file, empty or non-finite audio, a wrong rank,
    an unknown codec name, codes outside the codebook, an unsupported quantizer count...

    The message always names the offending value (path, shape, name or number).
    """


class AudioError(CodecError):
    """Audio that cannot be read or used: unreadable file, empty, NaN/inf, wrong rank."""


class ConfigError(CodecError):
    """A configuration value that the codec cannot honour (unknown name, unsupported count)."""
