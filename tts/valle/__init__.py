"""VALL-E: configuration (presets paper / small / tiny) and the AR + NAR model."""

from .configuration import TRAIN_PRESETS, ValleConfig
from .modeling import ValleModel

__all__ = ["TRAIN_PRESETS", "ValleConfig", "ValleModel"]
