from .base import Quantizer, QuantizerOutput
from .mcrvq import MaskedChannelRVQ
from .vq import EMACodebook

__all__ = ["Quantizer", "QuantizerOutput", "MaskedChannelRVQ", "EMACodebook"]
