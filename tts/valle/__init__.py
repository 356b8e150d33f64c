"""VALL-E: configuration (presets paper / small / tiny) and the AR + NAR model."""

from .configuration import TRAIN_PRESETS, ValleConfig
from .modeling import ValleModel

CONFIG_CLASS, MODEL_CLASS = ValleConfig, ValleModel

__all__ = ["CONFIG_CLASS", "MODEL_CLASS", "TRAIN_PRESETS", "ValleConfig", "ValleModel"]
