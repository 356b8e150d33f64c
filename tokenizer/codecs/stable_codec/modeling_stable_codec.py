"""Stable Codec model (TAAE): patching -> conv -> [strided conv, transformer blocks] x N -> conv -> FSQ, and
the mirror image back to patches.

Batch invariance: every convolution zero-pads each item from its own length (`PaddedConv1d` with zero
padding; `PaddedConvTranspose1d` zeroes the frames past each end first), attention masks the keys past
each end, and lengths at every stage are exact multiples of the remaining strides (the audio is
zero-padded to whole frames), so a padded batch codes each item exactly as it codes alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...utils.errors import ConfigError
from ...modeling import CodecModel
from ...model_outputs import CodecModelOutput
from ...modules.conv import PaddedConv1d, PaddedConvTranspose1d
from ...utils.masking import length_mask, zero_past_lengths
from ...modules.transformer import Transformer
from ...quantizers.fsq import FiniteScalarQuantizer
from .configuration_stable_codec import StableCodecConfig


class TAAEEncoder(nn.Module):
    """Patches (B, patch_size, N) -> latent (B, latent_dim, N / prod(strides)).

    Block i: a strided conv (kernel 2 * stride, none for stride 1) to `hidden_sizes[i]`, then `depths[i]`
    transformer blocks (`transformer`: keyword arguments of `Transformer` besides width and depth)."""

    def __init__(self, patch_size: int, hidden_sizes: list[int], strides: list[int], depths: list[int],
                 latent_dim: int, input_kernel_size: int = 7, latent_kernel_size: int = 3, causal: bool = False,
                 transformer: dict | None = None):
        super().__init__()
        widths, conv = [hidden_sizes[0]] + list(hidden_sizes), dict(causal=causal, pad_mode="zeros")
        self.input_conv = PaddedConv1d(patch_size, widths[0], input_kernel_size, **conv)
        self.downsample = nn.ModuleList(
            PaddedConv1d(widths[i], widths[i + 1], 2 * s, stride=s, **conv) if s > 1 else nn.Identity()
            for i, s in enumerate(strides)
        )
        self.blocks = nn.ModuleList(Transformer(widths[i + 1], d, **(transformer or {})) for i, d in enumerate(depths))
        self.output_conv = PaddedConv1d(widths[-1], latent_dim, latent_kernel_size, **conv)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None):
        x, lengths = self.input_conv(x, lengths)
        for down, block in zip(self.downsample, self.blocks):
            if not isinstance(down, nn.Identity):
                x, lengths = down(x, lengths)
            x = block(x.transpose(1, 2), lengths).transpose(1, 2)
        return self.output_conv(x, lengths)


class TAAEDecoder(nn.Module):
    """Latent (B, latent_dim, F) -> patches (B, patch_size, F * prod(strides)): the encoder's mirror image
    (same arguments), transformer blocks then a transposed conv in each block, an output conv without bias."""

    def __init__(self, patch_size: int, hidden_sizes: list[int], strides: list[int], depths: list[int],
                 latent_dim: int, output_kernel_size: int = 7, latent_kernel_size: int = 3, causal: bool = False,
                 transformer: dict | None = None):
        super().__init__()
        widths, n, conv = [hidden_sizes[0]] + list(hidden_sizes), len(strides), dict(causal=causal, pad_mode="zeros")
        self.input_conv = PaddedConv1d(latent_dim, widths[-1], latent_kernel_size, **conv)
        # decoder block j mirrors encoder block n - 1 - j: transformers at its width, then upsampling
        self.blocks = nn.ModuleList(Transformer(widths[n - j], depths[n - 1 - j], **(transformer or {}))
                                    for j in range(n))
        self.upsample = nn.ModuleList(
            PaddedConvTranspose1d(widths[n - j], widths[n - j - 1], strides[n - 1 - j], causal=causal)
            if strides[n - 1 - j] > 1 else nn.Identity()
            for j in range(n)
        )
        self.output_conv = PaddedConv1d(widths[0], patch_size, output_kernel_size, bias=False, **conv)

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
    token_modules = ("encoder", "quantizer")

    def __init__(self, config: StableCodecConfig):
        super().__init__(config)
        c = config
        transformer = dict(head_dim=c.head_dim, window=None if c.sliding_window is None else tuple(c.sliding_window),
                           ff_mult=c.ff_mult, norm_eps=c.norm_eps, qk_norm_eps=c.qk_norm_eps,
                           layer_scale_init=c.layer_scale_init, rope_base=c.rope_base)
        shape = dict(patch_size=c.patch_size, hidden_sizes=c.hidden_sizes, strides=c.strides, depths=c.depths,
                     latent_dim=c.latent_dim, latent_kernel_size=c.latent_kernel_size, causal=c.causal,
                     transformer=transformer)
        self.encoder = TAAEEncoder(input_kernel_size=c.input_kernel_size, **shape)
        self.quantizer = FiniteScalarQuantizer(c.latent_dim, c.quantizer_levels, c.num_quantizers, c.train_levels,
                                               c.noise_prob, c.continuous_prob)
        self.decoder = TAAEDecoder(output_kernel_size=c.output_kernel_size, **shape)
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

    def code_vectors(self, num_quantizers: int | None = None) -> torch.Tensor:
        return self._fsq().code_vectors(self.check_num_quantizers(num_quantizers))

    def num_quantizers_note(self) -> str:
        return (f"{self.config.quantizer_levels}-level FSQ in {self.config.num_quantizers} stage(s); "
                "call set_quantization for other rates")

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
            audio = zero_past_lengths(audio, lengths)
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
        return zero_past_lengths(self.quantizer.continuous(z), frames), frames

    def decode_latent(self, latent: torch.Tensor, frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Bounded latent (B, latent_dim, F) (quantized or continuous) -> audio (B, 1, F * hop)."""
        patches, _ = self.decoder(latent, frame_lengths)
        return self._unpatch(patches)

    def _encode_codes(self, audio: torch.Tensor, lengths: torch.Tensor | None, num_quantizers: int):
        z, frames = self.encode_latent(audio, lengths)
        return self._fsq().encode(z, num_quantizers), frames

    def _decode_codes(self, codes: torch.Tensor, frame_lengths: torch.Tensor | None) -> torch.Tensor:
        return self.decode_latent(self._fsq().decode(codes), frame_lengths)

    def forward(self, input_values: torch.Tensor, lengths: torch.Tensor | None = None,
                num_quantizers: int | None = None) -> CodecModelOutput:
        """Training pass: in train mode the FSQ draws its level count from `train_levels` and dithers;
        in eval mode it uses the configured post-hoc quantization (`num_quantizers` stages)."""
        z, frames = self.encode_latent(input_values, lengths)
        mask = None if frames is None else length_mask(frames, z.shape[-1])
        fsq = self._fsq()
        k = 1 if self.training else self.check_num_quantizers(num_quantizers)
        q = fsq(z, k, mask=mask)
        audio = self.decode_latent(q.quantized, frames)
        return CodecModelOutput(audio=audio, codes=q.codes, commit_loss=q.commit_loss, frame_lengths=frames,
                                 num_quantizers=q.codes.shape[1], stats=q.stats)
