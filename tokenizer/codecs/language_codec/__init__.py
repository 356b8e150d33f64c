from .configuration_language_codec import LanguageCodecConfig
from .modeling_language_codec import LanguageCodecModel

__all__ = ["LanguageCodecConfig", "LanguageCodecModel"]
