from .configuration_stable_codec import QUANTIZATION_PRESETS, StableCodecConfig
from .modeling_stable_codec import StableCodecModel
from .tokenization_stable_codec import StableCodecTokenizer

__all__ = ["QUANTIZATION_PRESETS", "StableCodecConfig", "StableCodecModel", "StableCodecTokenizer"]
