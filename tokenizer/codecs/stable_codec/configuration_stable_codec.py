"""Stable Codec configuration (Parker et al., "Scaling Transformers for Low-Bitrate High-Quality Speech
Coding"): the Transformer Audio AutoEncoder (TAAE) with an FSQ bottleneck and post-hoc residual FSQ."""

from __future__ import annotations

import math
from typing import ClassVar

from ...configuration import CodecConfig, derived_field
from ...utils.errors import ConfigError
from ...quantizers.fsq import check_quantization, effective_levels, stage_scales

# The official release's post-hoc presets: name -> (levels per stage, stages).
QUANTIZATION_PRESETS: dict[str, tuple[int, int]] = {
    "1x46656_400bps": (6, 1),
    "2x15625_700bps": (5, 2),
    "4x729_1000bps": (3, 4),
}


class StableCodecConfig(CodecConfig):
    """Architecture of a TAAE model and the FSQ configuration used for tokens.

    Audio is cut into non-overlapping patches of `patch_size` samples (channel j of patch t = sample
    t * patch_size + j). A conv of kernel `input_kernel_size` maps patches to `hidden_sizes[0]`; encoder
    block i starts with a strided conv (kernel 2 * stride, skipped for stride 1) to `hidden_sizes[i]` and
    runs `depths[i]` transformer blocks; a conv of kernel `latent_kernel_size` maps to `latent_dim`. The
    decoder mirrors it (transposed convs at the end of its blocks, output conv of kernel
    `output_kernel_size` without bias). hop = patch_size * prod(strides).

    Transformer: heads of `head_dim` (min(head_dim, width)), RoPE on the first half of each head, QK-norm
    (LayerNorm eps `qk_norm_eps`), LayerNorm eps `norm_eps`, LayerScale init `layer_scale_init`, gated
    SiLU feed-forward of `ff_mult` x width. `sliding_window` [left, right]: each step attends to `left`
    steps back and `right` ahead (None: full attention). `causal`: causal convolutions (the window
    should then have right = 0).

    FSQ: `train_levels` are the level counts drawn in training; in training each item gets uniform noise
    (`noise_prob`), no quantization (`continuous_prob`) or rounding (the rest): 50 / 25 / 25 % as the
    official `DitheredFSQ`, so the continuous mode is trained too. Tokens use `quantizer_levels` levels per
    stage and `num_quantizers` residual stages (see `set_quantization`). `codebook_size` is derived:
    quantizer_levels ** latent_dim (tokens of one stage).
    """

    model_type = "stable_codec"
    PRESETS: ClassVar[tuple[str, ...]] = ("paper", "paper_causal", "paper_12_5hz", "small", "tiny")
    DERIVED: ClassVar[tuple[str, ...]] = ("codebook_size",)

    sampling_rate: int = 16000
    patch_size: int = 320
    hidden_sizes: list[int] | tuple[int, ...] = (1024, 1024)
    strides: list[int] | tuple[int, ...] = (1, 2)
    depths: list[int] | tuple[int, ...] = (8, 20)
    head_dim: int = 128
    ff_mult: int = 4
    sliding_window: list[int] | tuple[int, int] | None = (63, 64)
    causal: bool = False
    norm_eps: float = 1e-2
    qk_norm_eps: float = 1e-6
    layer_scale_init: float = 1e-5
    rope_base: float = 10000.0
    input_kernel_size: int = 7
    latent_kernel_size: int = 3
    output_kernel_size: int = 7
    latent_dim: int = 6
    train_levels: list[int] | tuple[int, ...] = (17, 9, 5)
    noise_prob: float = 0.5
    continuous_prob: float = 0.25
    quantizer_levels: int = 17
    num_quantizers: int = 1

    def __post_init__(self, **kwargs):
        self.hidden_sizes = [int(v) for v in self.hidden_sizes]
        self.strides = [int(v) for v in self.strides]
        self.depths = [int(v) for v in self.depths]
        self.train_levels = [int(v) for v in self.train_levels]
        if self.sliding_window is not None:
            self.sliding_window = [int(v) for v in self.sliding_window]
        super().__post_init__(**kwargs)
        n = len(self.hidden_sizes)
        if not n or len(self.strides) != n or len(self.depths) != n:
            raise ConfigError(
                f"hidden_sizes {self.hidden_sizes}, strides {self.strides} and depths {self.depths} must have one "
                "entry per block"
            )
        widths = [self.hidden_sizes[0]] + self.hidden_sizes
        for i, s in enumerate(self.strides):
            if s < 1 or (s == 1 and widths[i] != widths[i + 1]):
                raise ConfigError(f"block {i}: stride {s} must be >= 1, and a stride-1 block cannot change width")
            if widths[i + 1] % min(self.head_dim, widths[i + 1]):
                raise ConfigError(f"block {i}: width {widths[i + 1]} is not a multiple of head_dim {self.head_dim}")
        if self.sliding_window is not None and (len(self.sliding_window) != 2 or min(self.sliding_window) < 0):
            raise ConfigError(f"sliding_window must be [left, right] >= 0 or None, got {self.sliding_window}")
        check_quantization(self.quantizer_levels, self.num_quantizers, self.train_levels)

    def architecture_dict(self) -> dict:
        # continuous_prob only shapes training and came after manifests recorded config hashes: leaving it
        # out keeps those hashes (tokens do not depend on it)
        return {k: v for k, v in super().architecture_dict().items() if k != "continuous_prob"}

    # ------------------------------------------------------------------ derived values
    @derived_field
    def codebook_size(self) -> int:
        """Tokens per stage: quantizer_levels ** latent_dim."""
        return self.quantizer_levels ** self.latent_dim

    @property
    def hop_length(self) -> int:
        return self.patch_size * math.prod(self.strides)

    @property
    def stage_scales(self) -> list[float]:
        """Range of each residual FSQ stage: 1, (L - 1)^-1, (L - 1)^-2, ..."""
        return stage_scales(self.quantizer_levels, self.num_quantizers)

    @property
    def effective_levels(self) -> int:
        """Levels per latent dimension reached by all stages together."""
        return effective_levels(self.quantizer_levels, self.num_quantizers)

    def supported_num_quantizers(self) -> list[int]:
        """Stage counts usable as a prefix: those whose grid is not coarser than the smallest trained one."""
        lowest = min(self.train_levels)
        return [k for k in range(1, self.num_quantizers + 1)
                if effective_levels(self.quantizer_levels, k) >= lowest]

    def set_quantization(self, levels: int | None = None, stages: int | None = None,
                         preset: str | None = None) -> None:
        """Switch the post-hoc FSQ: `levels` per dimension and stage, `stages` residual stages, or a named
        `preset` ("1x46656_400bps", "2x15625_700bps", "4x729_1000bps"). Raises ConfigError for levels below
        the smallest trained count (e.g. levels=3 with one stage when trained with {17, 9, 5})."""
        if preset is not None:
            if levels is not None or stages is not None:
                raise ConfigError("give either a quantization preset or levels/stages, not both")
            if preset not in QUANTIZATION_PRESETS:
                raise ConfigError(f"unknown quantization preset {preset!r}; known: {', '.join(QUANTIZATION_PRESETS)}")
            levels, stages = QUANTIZATION_PRESETS[preset]
        levels = self.quantizer_levels if levels is None else levels
        stages = 1 if stages is None else stages
        check_quantization(levels, stages, self.train_levels)
        self.quantizer_levels, self.num_quantizers = levels, stages

    # ------------------------------------------------------------------ presets
    @classmethod
    def paper(cls) -> "StableCodecConfig":
        """The paper's / released model: 16 kHz, patches of 320 (50 Hz), 8 blocks, 2x down, 20 blocks
        (25 Hz latent), width 1024, 6-dim FSQ trained with {17, 9, 5} levels; ~950 M parameters. Tokens
        default to the trained 17-level single-stage bottleneck (625 bps); `set_quantization` selects the
        400 / 700 / 1000 bps presets."""
        return cls()

    @classmethod
    def paper_causal(cls) -> "StableCodecConfig":
        """Streaming variant: causal convolutions and a 64-step window looking back (63 back + itself)."""
        return cls(causal=True, sliding_window=[63, 0])

    @classmethod
    def paper_12_5hz(cls) -> "StableCodecConfig":
        """Appendix A.3's lower frame rate: a further 2x downsampling block (12.5 Hz latent) and an 8-dim
        FSQ. The paper does not split the transformer blocks per stage; we keep 28 and use [8, 10, 10]."""
        return cls(hidden_sizes=[1024, 1024, 1024], strides=[1, 2, 2], depths=[8, 10, 10], latent_dim=8)

    @classmethod
    def small(cls) -> "StableCodecConfig":
        """A ~14 M-parameter model trainable on CPU: width 256, heads of 64, 2 + 4 blocks, same rates as the paper."""
        return cls(hidden_sizes=[256, 256], depths=[2, 4], head_dim=64)

    @classmethod
    def tiny(cls) -> "StableCodecConfig":
        """A test-sized model: 16 kHz, patches of 40, 1 + 1 blocks of width 32 (200 Hz frames), window
        [7, 8], 4-dim FSQ trained with {9, 5} levels, tokens as 3 residual stages of 3 levels (9-level grid)."""
        return cls(patch_size=40, hidden_sizes=[32, 32], depths=[1, 1], head_dim=16, sliding_window=[7, 8],
                   latent_dim=4, train_levels=[9, 5], quantizer_levels=3, num_quantizers=3)
