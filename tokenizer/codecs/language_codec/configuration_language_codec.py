"""Language-Codec configuration (Ji et al., "Language-Codec: Bridging Discrete Codec Representations
and Speech Language Models"): SEANet encoder, MCRVQ, Vocos decoder with an iSTFT head."""

from __future__ import annotations

import math
from typing import ClassVar

from ...configuration import CodecConfig
from ...utils.errors import ConfigError


class LanguageCodecConfig(CodecConfig):
    """Architecture of a Language-Codec model.

    Encoder: `encoder_filters` base channels doubled after each of `encoder_strides` (hop = their
    product), `encoder_lstm_layers` LSTM layers, `latent_dim` output channels. MCRVQ: `num_quantizers`
    codebooks of `codebook_size`, the first `num_parallel_quantizers` on channel thirds.
    `quantizer_counts`: the counts the decoder is trained for; the AdaLayerNorm row for K codes is
    `quantizer_counts.index(K)` unless a bandwidth id is given (the official checkpoint: counts [8], 4 rows).
    Decoder: `hidden_size`/`intermediate_size`/`num_hidden_layers` ConvNeXt blocks, `num_attention_layers`
    self-attention blocks, iSTFT with `n_fft` and hop = encoder hop.
    """

    model_type = "language_codec"
    PRESETS: ClassVar[tuple[str, ...]] = ("paper", "small", "tiny")

    sampling_rate: int = 24000
    audio_channels: int = 1
    encoder_filters: int = 32
    encoder_strides: list[int] | tuple[int, ...] = (2, 4, 5, 8)
    encoder_residual_layers: int = 1
    encoder_kernel_size: int = 7
    encoder_compress: int = 2
    encoder_lstm_layers: int = 2
    encoder_causal: bool = False
    latent_dim: int = 128
    num_quantizers: int = 8
    codebook_size: int = 1024
    num_parallel_quantizers: int = 3
    quantizer_counts: list[int] | tuple[int, ...] | None = None
    ema_decay: float = 0.99
    dead_code_threshold: float = 2.0
    commitment_weight: float = 1.0
    hidden_size: int = 384
    intermediate_size: int = 1152
    num_hidden_layers: int = 12
    num_attention_layers: int = 0
    num_attention_heads: int = 6
    adanorm_num_embeddings: int | None = None
    n_fft: int = 1280

    def __post_init__(self, **kwargs):
        if self.quantizer_counts is None:
            self.quantizer_counts = list(range(self.num_parallel_quantizers, self.num_quantizers + 1))
        self.encoder_strides = list(self.encoder_strides)
        self.quantizer_counts = list(self.quantizer_counts)
        if self.adanorm_num_embeddings is None:
            self.adanorm_num_embeddings = len(self.quantizer_counts)
        super().__post_init__(**kwargs)
        bad = [k for k in self.quantizer_counts if not self.num_parallel_quantizers <= k <= self.num_quantizers]
        if bad:
            raise ConfigError(
                f"quantizer_counts {bad} outside [{self.num_parallel_quantizers}, {self.num_quantizers}]"
            )

    @property
    def hop_length(self) -> int:
        return math.prod(self.encoder_strides)

    @classmethod
    def paper(cls) -> "LanguageCodecConfig":
        """The paper's 24 kHz model: hop 320 (75 Hz), 8 x 1024 MCRVQ (3 to 8 usable: 2250-6000 bps),
        ConvNeXt dim 384 / 1152 x 12, n_fft 1280. Attention blocks: 0 as in the released checkpoint."""
        return cls()

    @classmethod
    def small(cls) -> "LanguageCodecConfig":
        """16 kHz model sized for CPU training (hop 320 -> 50 Hz, 8 x 1024 codes, 8 ConvNeXt blocks of 256)."""
        return cls(sampling_rate=16000, encoder_filters=24, encoder_strides=[2, 4, 5, 8], latent_dim=96,
                   hidden_size=256, intermediate_size=768, num_hidden_layers=8, n_fft=1280)

    @classmethod
    def tiny(cls) -> "LanguageCodecConfig":
        """A few-thousand-parameter model for tests: 16 kHz, hop 40, 6 x 64 codes."""
        return cls(sampling_rate=16000, encoder_filters=4, encoder_strides=[2, 4, 5], latent_dim=12,
                   encoder_lstm_layers=1, num_quantizers=6, codebook_size=64, hidden_size=32,
                   intermediate_size=64, num_hidden_layers=2, num_attention_layers=1, num_attention_heads=2,
                   n_fft=160)
