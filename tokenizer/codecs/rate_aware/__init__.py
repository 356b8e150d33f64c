from .configuration_rate_aware import PAPER_LAMBDAS, RateAwareConfig
from .modeling_rate_aware import RateAwareModel
from .tokenization_rate_aware import CompressionStats, RateAwareTokenizer, StreamDecoding

__all__ = ["PAPER_LAMBDAS", "RateAwareConfig", "RateAwareModel", "RateAwareTokenizer",
           "CompressionStats", "StreamDecoding"]
