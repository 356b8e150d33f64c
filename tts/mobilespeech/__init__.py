"""MobileSpeech: configuration (presets paper / small / tiny), the model, its masking regimes and decoding."""

from .configuration import TRAIN_PRESETS, MobileSpeechConfig
from .decoding import MaskDecodingConfig
from .modeling import MobileSpeechModel

CONFIG_CLASS, MODEL_CLASS = MobileSpeechConfig, MobileSpeechModel

__all__ = ["CONFIG_CLASS", "MODEL_CLASS", "TRAIN_PRESETS", "MaskDecodingConfig", "MobileSpeechConfig",
           "MobileSpeechModel"]
