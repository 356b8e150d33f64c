"""Stable Codec model (TAAE): patching -> conv -> [strided conv, transformer blocks] x N -> conv -> FSQ, and
the mirror image back to patches.

Batch invariance: every convolution zero-pads each item from its own length (`PaddedConv1d` with zero
padding, and the transposed convolution below zeroes the frames past each end first), attention masks
the keys past each end, and lengths at every stage are exact multiples of the remaining strides (the
audio is zero-padded to whole frames), so a padded batch codes each item exactly as it codes alone.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ...errors import ConfigError
from ...modeling import CodecModel
from ...outputs import CodecModelOutput
from ...modules.conv import PaddedConv1d, mask_time, time_mask
from ...modules.transformer import Transformer
from ...quantizers.fsq import FiniteScalarQuantizer
from .configuration_stable_codec import StableCodecConfig


StableCodecOutput = CodecModelOutput  # the shared training-output contract (tokenizer/outputs.py)


class PaddedConvTranspose1d(nn.Module):
    """Weight-normalised transposed conv with kernel 2 * stride: (B, C_in, T) -> (B, C_out, T * stride).

    Non-causal: the full output is cropped by ceil(stride / 2) on the left (as `padding=ceil(stride/2)`
    does for even strides); causal: the first T * stride samples are kept, so output t depends only on
    inputs <= t / stride. Frames past each item's length are zeroed first.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, causal: bool = False):
        super().__init__()
        self.conv = weight_norm(nn.ConvTranspose1d(in_channels, out_channels, 2 * stride, stride=stride))
        self.stride, self.causal = stride, causal

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        y = self.conv(mask_time(x, lengths))
        start = 0 if self.causal else -(-self.stride // 2)
        y = y[..., start : start + x.shape[-1] * self.stride]
        return y, (None if lengths is None else lengths * self.stride)


def _transformer(config: StableCodecConfig, width: int, depth: int) -> Transformer:
    window = None if config.sliding_window is None else tuple(config.sliding_window)
    return Transformer(width, depth, head_dim=config.head_dim, window=window, ff_mult=config.ff_mult,
                       norm_eps=config.norm_eps, qk_norm_eps=config.qk_norm_eps,
                       layer_scale_init=config.layer_scale_init, rope_base=config.rope_base)


class TAAEEncoder(nn.Module):
    """Patches (B, patch_size, N) -> latent (B, latent_dim, N / prod(strides))."""

    def __init__(self, config: StableCodecConfig):
        super().__init__()
        c, widths = config, [config.hidden_sizes[0]] + list(config.hidden_sizes)
        self.input_conv = PaddedConv1d(c.patch_size, widths[0], c.input_kernel_size, causal=c.causal,
                                       pad_mode="zeros")
        self.downsample = nn.ModuleList(
            PaddedConv1d(widths[i], widths[i + 1], 2 * s, stride=s, causal=c.causal, pad_mode="zeros")
            if s > 1 else nn.Identity()
            for i, s in enumerate(c.strides)
        )
        self.blocks = nn.ModuleList(_transformer(c, widths[i + 1], d) for i, d in enumerate(c.depths))
        self.output_conv = PaddedConv1d(widths[-1], c.latent_dim, c.latent_kernel_size, causal=c.causal,
                                        pad_mode="zeros")

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None):
        x, lengths = self.input_conv(x, lengths)
        for down, block in zip(self.downsample, self.blocks):
            if not isinstance(down, nn.Identity):
                x, lengths = down(x, lengths)
            x = block(x.transpose(1, 2), lengths).transpose(1, 2)
        return self.output_conv(x, lengths)


class TAAEDecoder(nn.Module):
    """Latent (B, latent_dim, F) -> patches (B, patch_size, F * prod(strides))."""

    def __init__(self, config: StableCodecConfig):
        super().__init__()
        c, widths = config, [config.hidden_sizes[0]] + list(config.hidden_sizes)
        n = len(c.strides)
        self.input_conv = PaddedConv1d(c.latent_dim, widths[-1], c.latent_kernel_size, causal=c.causal,
                                       pad_mode="zeros")
        # decoder block j mirrors encoder block n - 1 - j: transformers at its width, then upsampling
        self.blocks = nn.ModuleList(_transformer(c, widths[n - j], c.depths[n - 1 - j]) for j in range(n))
        self.upsample = nn.ModuleList(
            PaddedConvTranspose1d(widths[n - j], widths[n - j - 1], c.strides[n - 1 - j], causal=c.causal)
            if c.strides[n - 1 - j] > 1 else nn.Identity()
            for j in range(n)
        )
        self.output_conv = PaddedConv1d(widths[0], c.patch_size, c.output_kernel_size, causal=c.causal,
                                        pad_mode="zeros", bias=False)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None):
        x, lengths = self.input_conv(x, lengths)
        for block, up in zip(self.blocks, self.upsample):
            x = block(x.transpose(1, 2), lengths).transpose(1, 2)
            if not isinstance(up, nn.Identity):
                x, lengths = up(x, lengths)
        return self.output_conv(x, lengths)


class StableCodecModel(CodecModel):
    """Transformer Audio AutoEncoder with an FSQ bottleneck.

    encode(audio (B, 1, T), lengths, num_quantizers) -> codes (B, K, ceil(T / hop)), frame lengths (B,);
    decode(codes, frame_lengths) -> audio (B, 1, F * hop), sample lengths (B,);
    encode_latent / decode_latent give the continuous (tanh-bounded, unquantized) path.
    """

    config_class = StableCodecConfig

    def __init__(self, config: StableCodecConfig):
        super().__init__(config)
        self.encoder = TAAEEncoder(config)
        self.quantizer = FiniteScalarQuantizer(config.latent_dim, config.quantizer_levels, config.num_quantizers,
                                               config.train_levels, config.noise_prob)
        self.decoder = TAAEDecoder(config)
        self.post_init()

    # ------------------------------------------------------------------ quantization settings
    def _fsq(self) -> FiniteScalarQuantizer:
        # the config is the one source of truth (set_quantization edits it); keep the quantizer in step
        q = self.quantizer
        if (q.levels, q.stages) != (self.config.quantizer_levels, self.config.num_quantizers):
            q.configure(self.config.quantizer_levels, self.config.num_quantizers)
        return q

    def set_quantization(self, levels: int | None = None, stages: int | None = None, preset: str | None = None):
        """See `StableCodecConfig.set_quantization`."""
        self.config.set_quantization(levels, stages, preset)
        self._fsq()

    def supported_num_quantizers(self) -> list[int]:
        return self.config.supported_num_quantizers()

    def check_num_quantizers(self, k: int | None) -> int:
        k = self.config.num_quantizers if k is None else k
        if not isinstance(k, int) or isinstance(k, bool):
            raise ConfigError(f"num_quantizers must be an int, got {k!r}")
        supported = self.supported_num_quantizers()
        if k not in supported:
            raise ConfigError(
                f"num_quantizers={k} not supported with {self.config.quantizer_levels}-level FSQ in "
                f"{self.config.num_quantizers} stage(s); choose one of {supported} or call set_quantization"
            )
        return k

    # ------------------------------------------------------------------ audio <-> patches
    def _patch(self, audio: torch.Tensor, lengths: torch.Tensor | None):
        """(B, 1, T) -> patches (B, patch_size, N) covering whole frames, patch lengths (B,) | None."""
        if audio.ndim != 3 or audio.shape[1] != 1:
            raise ConfigError(f"audio must have shape (B, 1, T), got {tuple(audio.shape)}")
        hop, P = self.config.hop_length, self.config.patch_size
        B, _, T = audio.shape
        audio = F.pad(audio, (0, -T % hop))
        if lengths is not None:
            # zero the samples past each end, then count whole frames: everything up to the frame
            # boundary is "valid" alone and in a batch alike
            audio = mask_time(audio, lengths)
            lengths = (lengths + hop - 1) // hop * (hop // P)
        patches = audio.view(B, -1, P).transpose(1, 2)
        return patches, lengths

    def _unpatch(self, patches: torch.Tensor) -> torch.Tensor:
        B, P, N = patches.shape
        return patches.transpose(1, 2).reshape(B, 1, N * P)

    # ------------------------------------------------------------------ public API
    def encode_latent(self, audio: torch.Tensor, lengths: torch.Tensor | None = None):
        """audio (B, 1, T) -> pre-bottleneck latent z (B, latent_dim, F), frame lengths (B,) | None."""
        patches, plen = self._patch(audio, lengths)
        return self.encoder(patches, plen)

    def encode_continuous(self, audio: torch.Tensor, lengths: torch.Tensor | None = None):
        """Continuous mode: tanh(z) (B, latent_dim, F) in (-1, 1), unquantized; frame lengths (B,)."""
        z, frames = self.encode_latent(audio, lengths)
        if frames is None:
            frames = torch.full((z.shape[0],), z.shape[-1], dtype=torch.long, device=z.device)
        return mask_time(self.quantizer.continuous(z), frames), frames

    def decode_latent(self, latent: torch.Tensor, frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Bounded latent (B, latent_dim, F) (quantized or continuous) -> audio (B, 1, F * hop)."""
        patches, _ = self.decoder(latent, frame_lengths)
        return self._unpatch(patches)

    def encode(self, audio: torch.Tensor, lengths: torch.Tensor | None = None, num_quantizers: int | None = None):
        """audio (B, 1, T) -> codes (B, K, ceil(T / hop)) (0 past each item's end), frame lengths (B,)."""
        k = self.check_num_quantizers(num_quantizers)
        z, frames = self.encode_latent(audio, lengths)
        codes = self._fsq().encode(z, k)
        if frames is None:
            frames = torch.full((codes.shape[0],), codes.shape[-1], dtype=torch.long, device=codes.device)
        else:
            codes = codes * time_mask(frames, codes.shape[-1])[:, None, :]
        return codes, frames

    def decode(self, codes: torch.Tensor, frame_lengths: torch.Tensor | None = None):
        """codes (B, K, F) -> audio (B, 1, F * hop), sample lengths (B,)."""
        self.check_num_quantizers(codes.shape[1])
        audio = self.decode_latent(self._fsq().decode(codes), frame_lengths)
        if frame_lengths is None:
            frame_lengths = torch.full((codes.shape[0],), codes.shape[-1], dtype=torch.long, device=codes.device)
        return audio, frame_lengths * self.config.hop_length

    def forward(self, input_values: torch.Tensor, lengths: torch.Tensor | None = None,
                num_quantizers: int | None = None) -> StableCodecOutput:
        """Training pass: in train mode the FSQ draws its level count from `train_levels` and dithers;
        in eval mode it uses the configured post-hoc quantization (`num_quantizers` stages)."""
        z, frames = self.encode_latent(input_values, lengths)
        mask = None if frames is None else time_mask(frames, z.shape[-1])
        fsq = self._fsq()
        k = 1 if self.training else self.check_num_quantizers(num_quantizers)
        q = fsq(z, k, mask=mask)
        audio = self.decode_latent(q.quantized, frames)
        return StableCodecOutput(audio=audio, codes=q.codes, commit_loss=q.commit_loss, frame_lengths=frames,
                                 num_quantizers=q.codes.shape[1], stats=q.stats)
