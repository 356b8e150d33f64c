"""Rate-Aware Learned Speech Compression model (Xu et al. 2025): no quantizer codebooks, but scalar
rounding with a learned channel-wise entropy model, trained on L = R(y) + R(z) + lambda D.

    x_f = STFT(x)                     "same" padding, power-law compressed complex spectrum
    y = g_a(x_f)                      CNN-RWKV mixture (CRM) encoder, strided in time
    z = h_a(y); z_hat = round(z)      hyperprior, coded with a per-channel factorized density
    F_mean, F_scale = h_s(z_hat)
    for slice i of y (in order):      channel-wise autoregression
        mu_i, sigma_i = e_i(F_mean, F_scale, y_hat_<i)       (RWKV block + parameter net)
        q_i = round(y_i - mu_i);  y_hat_i = q_i + mu_i       (q_i coded with N(0, sigma_i))
        y_bar_i = y_hat_i + 0.5 tanh(lrp_i(F_mean, y_hat_<=i))   (latent residual prediction)
    x_hat = iSTFT(g_s(y_bar))

Training: likelihoods of y + u and z + u (u ~ U(-0.5, 0.5), Ballé et al.), the decoder and the context
nets see straight-through rounded values (y_hat = mu + round(y - mu) forward, identity gradient).

Codes (the tokenizer API): LongTensor (B, latent_dim + hyper_latent_dim, F) at the y frame rate:
rows [0, latent_dim) hold q (the y symbols), rows [latent_dim, ...) hold z_hat, each z frame repeated over
the `hyper_stride` y frames it covers; all offset by M = codebook_size // 2 into [0, codebook_size).
The symbols are clamped to [-M, M - 1].

Determinism: everything between integer symbols and the coding distributions (h_s, the slice nets, the
residual prediction) runs in float64 on a copy of the weights, means are rounded to a 2^-10 grid and
scales replaced by a table index, and each stream is coded alone (batch 1). Encoder and decoder thus
compute identical tables on one machine; across machines a disagreement needs two float64 evaluations
to straddle a rounding boundary. Training (`forward`) runs in the model's own dtype.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...losses import MultiScaleSpectralLoss
from ...modeling import CodecModel
from ...modules.conv import PaddedConv1d, conv_output_lengths, time_mask
from ...modules.crm import CRMBlock
from ...modules.istft import ISTFTHead
from ...modules.rwkv import RWKVBlock
from .configuration_rate_aware import RateAwareConfig
from .entropy import (MEAN_STEP, FactorizedPrior, ScaleTable, gaussian_likelihood, quantize_pmf, ste_round)

_CONV = dict(pad_mode="zeros")


def stft_same(audio: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """STFT with "same" padding, the analysis twin of `modules.istft.istft_same`: (B, T) ->
    complex (B, n_fft // 2 + 1, ceil(T / hop)). Frame f covers samples [f hop - p, f hop - p + n_fft),
    p = (n_fft - hop) / 2, zeros outside the signal (so zero padding after an item changes none of its
    frames)."""
    T = audio.shape[-1]
    frames = -(-T // hop_length)
    pad = (n_fft - hop_length) // 2
    x = F.pad(audio, (pad, (frames - 1) * hop_length + n_fft - pad - T))
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    return torch.stft(x, n_fft, hop_length, window=window, center=False, return_complex=True)


# ------------------------------------------------------------------ transforms
class Analysis(nn.Module):
    """g_a: spectral features (B, C_in, F_stft) -> y (B, latent_dim, ceil(F_stft / prod(strides)))."""

    def __init__(self, in_channels: int, channels: list[int], strides: list[int], rwkv_layers: list[int],
                 blocks_per_scale: int, crm_downsample: int, latent_dim: int, chunk_size: int):
        super().__init__()
        self.inp = PaddedConv1d(in_channels, channels[0], 7, **_CONV)
        self.scales = nn.ModuleList(
            nn.ModuleList(CRMBlock(c, n, crm_downsample, chunk_size=chunk_size) for _ in range(blocks_per_scale))
            for c, n in zip(channels, rwkv_layers)
        )
        self.downs = nn.ModuleList(
            PaddedConv1d(channels[s], channels[s + 1], 2 * st, stride=st, **_CONV) for s, st in enumerate(strides)
        )
        self.act = nn.ELU()
        self.out = PaddedConv1d(channels[-1], latent_dim, 3, **_CONV)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        x, _ = self.inp(x, lengths)
        for s, blocks in enumerate(self.scales):
            for block in blocks:
                x = block(x, lengths)
            if s < len(self.downs):
                x, lengths = self.downs[s](self.act(x), lengths)
        y, _ = self.out(self.act(x), lengths)
        return y, lengths


class Synthesis(nn.Module):
    """g_s: y_bar (B, latent_dim, F) -> audio (B, F * prod(strides) * hop): CRM scales in reverse order,
    transposed-conv upsampling (kernel = stride), Vocos-style iSTFT head."""

    def __init__(self, latent_dim: int, channels: list[int], strides: list[int], rwkv_layers: list[int],
                 blocks_per_scale: int, crm_downsample: int, n_fft: int, hop_length: int, chunk_size: int):
        super().__init__()
        self.inp = PaddedConv1d(latent_dim, channels[-1], 3, **_CONV)
        order = list(range(len(channels)))[::-1]
        self.scales = nn.ModuleList(
            nn.ModuleList(CRMBlock(channels[s], rwkv_layers[s], crm_downsample, chunk_size=chunk_size)
                          for _ in range(blocks_per_scale))
            for s in order
        )
        self.strides = [strides[s - 1] for s in order[:-1]]
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(channels[s], channels[s - 1], strides[s - 1], stride=strides[s - 1]) for s in order[:-1]
        )
        self.act = nn.ELU()
        self.head = ISTFTHead(channels[0], n_fft, hop_length)

    def forward(self, y: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x, _ = self.inp(y, lengths)
        for k, blocks in enumerate(self.scales):
            for block in blocks:
                x = block(x, lengths)
            if k < len(self.ups):
                x = self.ups[k](self.act(x))
                lengths = None if lengths is None else lengths * self.strides[k]
        return self.head(self.act(x).transpose(1, 2), lengths)[:, None, :]


class HyperAnalysis(nn.Module):
    """h_a: y (B, latent_dim, F) -> z (B, hyper_latent_dim, ceil(F / stride))."""

    def __init__(self, latent_dim: int, channels: int, hyper_dim: int, stride: int, crm_downsample: int,
                 chunk_size: int):
        super().__init__()
        self.inp = PaddedConv1d(latent_dim, channels, 3, **_CONV)
        self.crm = CRMBlock(channels, 1, crm_downsample, chunk_size=chunk_size)
        self.down = PaddedConv1d(channels, channels, max(2 * stride, 3), stride=stride, **_CONV)
        self.act = nn.ELU()
        self.out = PaddedConv1d(channels, hyper_dim, 3, **_CONV)

    def forward(self, y: torch.Tensor, lengths: torch.Tensor | None = None):
        x, _ = self.inp(y, lengths)
        x = self.crm(x, lengths)
        x, lengths = self.down(self.act(x), lengths)
        z, _ = self.out(self.act(x), lengths)
        return z, lengths


class HyperSynthesis(nn.Module):
    """h_s: z_hat (B, hyper_dim, F_z) -> F_mean, F_scale (B, latent_dim, F) each, F <= F_z * stride."""

    def __init__(self, hyper_dim: int, channels: int, latent_dim: int, stride: int, crm_downsample: int,
                 chunk_size: int):
        super().__init__()
        self.stride = stride
        self.inp = PaddedConv1d(hyper_dim, channels, 3, **_CONV)
        self.up = nn.ConvTranspose1d(channels, channels, stride, stride=stride)
        self.crm = CRMBlock(channels, 1, crm_downsample, chunk_size=chunk_size)
        self.act = nn.ELU()
        self.out = PaddedConv1d(channels, 2 * latent_dim, 3, **_CONV)

    def forward(self, z: torch.Tensor, frames: int, z_lengths: torch.Tensor | None = None,
                lengths: torch.Tensor | None = None):
        x, _ = self.inp(z, z_lengths)
        x = self.up(self.act(x))[..., :frames]
        x = self.crm(x, lengths)
        return self.out(self.act(x), lengths)[0].chunk(2, dim=1)


class SliceParameterNet(nn.Module):
    """e_i: (F_mean, F_scale, y_hat_<i) (B, C_in, F) -> mu_i, sigma_i (B, C_slice, F) through a 1x1
    projection, an RWKV block over time and a pointwise parameter net. sigma >= min_scale."""

    def __init__(self, in_channels: int, hidden: int, slice_channels: int, min_scale: float, chunk_size: int):
        super().__init__()
        self.min_scale = min_scale
        self.inp = nn.Linear(in_channels, hidden)
        self.rwkv = RWKVBlock(hidden, chunk_size=chunk_size, hidden_mult=2)
        self.params = nn.Sequential(nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 2 * slice_channels))

    def forward(self, x: torch.Tensor):
        h, _ = self.rwkv(self.inp(x.transpose(1, 2)))
        mu, raw = self.params(h).transpose(1, 2).chunk(2, dim=1)
        return mu, self.min_scale + F.softplus(raw)


class ChannelwiseEntropyModel(nn.Module):
    """h_s, the slice parameter nets e_i and the latent residual prediction nets: everything that turns
    decoded integers into coding distributions and the decoder's input. Works in any float dtype."""

    def __init__(self, config: RateAwareConfig):
        super().__init__()
        c = config
        self.num_slices = c.num_slices
        self.slice_channels = c.latent_dim // c.num_slices
        cs, chunk = self.slice_channels, c.rwkv_chunk_size
        self.hyper_synthesis = HyperSynthesis(c.hyper_latent_dim, c.hyper_channels, c.latent_dim, c.hyper_stride,
                                              c.crm_downsample, chunk)
        self.param_nets = nn.ModuleList(
            SliceParameterNet(2 * c.latent_dim + i * cs, c.entropy_hidden, cs, c.min_scale, chunk)
            for i in range(c.num_slices)
        )
        self.residual_nets = nn.ModuleList(
            nn.Sequential(nn.Linear(c.latent_dim + (i + 1) * cs, c.entropy_hidden), nn.GELU(),
                          nn.Linear(c.entropy_hidden, cs))
            for i in range(c.num_slices)
        )

    def slice(self, i: int) -> slice:
        return slice(i * self.slice_channels, (i + 1) * self.slice_channels)

    def hyper(self, z_hat: torch.Tensor, frames: int, z_lengths=None, lengths=None):
        """F_mean, F_scale (B, latent_dim, frames)."""
        return self.hyper_synthesis(z_hat, frames, z_lengths, lengths)

    def slice_params(self, i: int, f_mean: torch.Tensor, f_scale: torch.Tensor, previous: torch.Tensor):
        """mu_i, sigma_i of slice i from the hyperprior features and the i earlier slices (B, i * C_slice, F)."""
        return self.param_nets[i](torch.cat([f_mean, f_scale, previous], dim=1))

    def residual(self, i: int, f_mean: torch.Tensor, upto: torch.Tensor) -> torch.Tensor:
        """r_i = 0.5 tanh(lrp_i(F_mean, y_hat_<=i)) (B, C_slice, F)."""
        h = self.residual_nets[i](torch.cat([f_mean, upto], dim=1).transpose(1, 2))
        return 0.5 * torch.tanh(h.transpose(1, 2))


# ------------------------------------------------------------------ decoder-side context
class LatentContext:
    """The channel-wise entropy model walked slice by slice, exactly as a decoder must walk it.

    Built from integer z symbols (B, C_z, F_z); `slice_parameters(i)` gives slice i's means (float64, on the
    MEAN_STEP grid) and scale-table indices (also kept in `scale_index` (B, latent_dim, F)),
    `set_slice(i, q)` records its integer symbols (B, C_slice, F); `latent()` is y_bar (B, latent_dim, F)
    for g_s. The encoder (`encode`, `compress`) and the decoder
    (`decode`, `decompress`) use this same object, so they compute the same numbers.
    """

    def __init__(self, entropy: ChannelwiseEntropyModel, scale_table: ScaleTable, z_symbols: torch.Tensor,
                 frames: int, lengths: torch.Tensor | None = None, z_lengths: torch.Tensor | None = None):
        self.entropy, self.table = entropy, scale_table
        dtype = next(entropy.parameters()).dtype
        self.f_mean, self.f_scale = entropy.hyper(z_symbols.to(dtype), frames, z_lengths, lengths)
        B = z_symbols.shape[0]
        self.y_hat = torch.zeros(B, entropy.slice_channels * entropy.num_slices, frames, dtype=dtype,
                                 device=z_symbols.device)
        self.scale_index = torch.zeros(self.y_hat.shape, dtype=torch.long, device=z_symbols.device)
        self.done = 0
        self._mean: torch.Tensor | None = None

    def slice_parameters(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if i != self.done:
            raise RuntimeError(f"slice {i} requested before slices {self.done}..{i - 1} were set")
        sl = self.entropy.slice(i)
        mu, sigma = self.entropy.slice_params(i, self.f_mean, self.f_scale, self.y_hat[:, : sl.start])
        self._mean = torch.round(mu / MEAN_STEP) * MEAN_STEP
        self.scale_index[:, sl] = self.table.index(sigma)
        return self._mean, self.scale_index[:, sl]

    def set_slice(self, i: int, symbols: torch.Tensor) -> None:
        if i != self.done or self._mean is None:
            raise RuntimeError(f"set_slice({i}) without slice_parameters({i})")
        self.y_hat[:, self.entropy.slice(i)] = symbols.to(self.y_hat.dtype) + self._mean
        self.done, self._mean = self.done + 1, None

    def latent(self) -> torch.Tensor:
        if self.done != self.entropy.num_slices:
            raise RuntimeError(f"only {self.done} of {self.entropy.num_slices} slices set")
        parts = []
        for i in range(self.entropy.num_slices):
            sl = self.entropy.slice(i)
            parts.append(self.y_hat[:, sl] + self.entropy.residual(i, self.f_mean, self.y_hat[:, : sl.stop]))
        return torch.cat(parts, dim=1)


# ------------------------------------------------------------------ model
@dataclass
class RateAwareOutput:
    """Training forward.

    audio (B, 1, F * hop); commit_loss: zero scalar (no codebooks; kept for the shared trainer);
    rate_loss: scalar, total estimated bits of y and z over the batch divided by the number of input
    audio samples (bits per sample; x sampling_rate = bits per second); bits (B,) estimated bits per item;
    bits_y, bits_z (B,); frame_lengths (B,) | None; stats: {"bps_y", "bps_z", "bps"} bits per second.
    """

    audio: torch.Tensor
    commit_loss: torch.Tensor
    rate_loss: torch.Tensor
    bits: torch.Tensor
    bits_y: torch.Tensor
    bits_z: torch.Tensor
    frame_lengths: torch.Tensor | None
    stats: dict = field(default_factory=dict)


def _frame_mask(lengths: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if lengths is None:
        return torch.ones_like(like[:, :1])
    return time_mask(lengths, like.shape[-1])[:, None, :].to(like.dtype)


@functools.lru_cache(maxsize=4)
def _spectral_loss(sampling_rate: int, device: str) -> MultiScaleSpectralLoss:
    """One loss module (its mel filterbanks) per rate and device, kept out of the model's state dict."""
    return MultiScaleSpectralLoss(sampling_rate).to(device)


class RateAwareModel(CodecModel):
    config_class = RateAwareConfig

    def __init__(self, config: RateAwareConfig):
        super().__init__(config)
        c = config
        bins = c.n_fft // 2 + 1
        chunk = c.rwkv_chunk_size
        self.analysis = Analysis(2 * bins, c.encoder_channels, c.encoder_strides, c.rwkv_layers,
                                 c.crm_blocks_per_scale, c.crm_downsample, c.latent_dim, chunk)
        self.synthesis = Synthesis(c.latent_dim, c.encoder_channels, c.encoder_strides, c.rwkv_layers,
                                   c.crm_blocks_per_scale, c.crm_downsample, c.n_fft, c.stft_hop_length, chunk)
        self.hyper_analysis = HyperAnalysis(c.latent_dim, c.hyper_channels, c.hyper_latent_dim, c.hyper_stride,
                                            c.crm_downsample, chunk)
        self.entropy = ChannelwiseEntropyModel(c)
        self.prior = FactorizedPrior(c.hyper_latent_dim, init_scale=c.prior_init_scale)
        n = c.codebook_size
        # Integer coding tables (see entropy.py), saved with the weights so every machine decodes alike.
        self.register_buffer("gaussian_counts", torch.from_numpy(quantize_pmf(self.scale_table.pmf(n // 2))).int())
        self.register_buffer("prior_counts", torch.ones(c.hyper_latent_dim, n, dtype=torch.int32))
        self.register_buffer("prior_counts_key", torch.zeros((), dtype=torch.int64))
        self._entropy64 = None
        self.post_init()
        self.update_entropy_tables()

    # ---------------------------------------------------------- contract
    @property
    def scale_table(self) -> ScaleTable:
        c = self.config
        return ScaleTable(c.min_scale, c.max_scale, c.num_scales)

    def supported_num_quantizers(self) -> list[int]:
        return [self.config.num_quantizers]

    def check_num_quantizers(self, k: int | None) -> int:
        n = self.config.num_quantizers
        k = n if k is None else k
        if not isinstance(k, int) or isinstance(k, bool):
            raise ConfigError(f"num_quantizers must be an int, got {k!r}")
        if k != n:
            raise ConfigError(
                f"num_quantizers={k} not supported: the rate-aware codec always codes all {n} latent channels "
                f"({self.config.latent_dim} y + {self.config.hyper_latent_dim} z); its rate is set by rd_lambda"
            )
        return k

    # ---------------------------------------------------------- tables and digests
    def _prior_key(self) -> int:
        h = hashlib.sha256()
        for name, p in sorted(self.prior.named_parameters()):
            h.update(name.encode())
            h.update(p.detach().to("cpu", torch.float32).numpy().tobytes())
        return int.from_bytes(h.digest()[:8], "little", signed=True)

    @torch.no_grad()
    def update_entropy_tables(self, force: bool = False) -> bool:
        """Rebuild the z coding tables from the learned prior if its parameters changed since they were
        built (or `force`). Returns True when rebuilt. Call after training; `save_pretrained` calls it."""
        if any(p.is_meta for p in self.prior.parameters()):
            return False  # being built on the meta device by from_pretrained: the loaded buffers are used
        key = self._prior_key()
        if not force and int(self.prior_counts_key) == key:
            return False
        counts = quantize_pmf(self.prior.pmf(self.config.symbol_offset))
        self.prior_counts.copy_(torch.from_numpy(counts).to(self.prior_counts))
        self.prior_counts_key.fill_(key)
        return True

    def save_pretrained(self, save_directory, *args, **kwargs):
        self.update_entropy_tables()
        return super().save_pretrained(save_directory, *args, **kwargs)

    def entropy_float64(self) -> ChannelwiseEntropyModel:
        """A float64 copy of the entropy model (cached until any weight changes) for coding."""
        versions = self._versions()
        if self._entropy64 is None or self._entropy64[0] != versions:
            with torch.inference_mode(False), torch.no_grad():
                copy64 = copy.deepcopy(self.entropy).to(torch.float64).eval()
            self._entropy64 = (versions, copy64)
        return self._entropy64[1]

    # ---------------------------------------------------------- pieces
    def spectral_features(self, audio: torch.Tensor) -> torch.Tensor:
        """audio (B, 1, T) -> (B, 2 * (n_fft // 2 + 1), ceil(T / stft_hop)): real and imaginary parts of the
        STFT with magnitudes compressed as |X|^spectral_compression."""
        c = self.config
        spec = stft_same(audio[:, 0], c.n_fft, c.stft_hop_length)
        spec = spec * (spec.abs() + 1e-5) ** (c.spectral_compression - 1.0)
        return torch.cat([spec.real, spec.imag], dim=1)

    def analyze(self, audio: torch.Tensor, lengths: torch.Tensor | None = None):
        """audio (B, 1, T) -> y (B, latent_dim, F), z (B, hyper_dim, F_z), frame lengths (B,) | None, z lengths."""
        stft_lengths = None if lengths is None else conv_output_lengths(lengths, self.config.stft_hop_length)
        y, y_lengths = self.analysis(self.spectral_features(audio), stft_lengths)
        z, z_lengths = self.hyper_analysis(y, y_lengths)
        return y * self.config.latent_gain, z * self.config.hyper_latent_gain, y_lengths, z_lengths

    def synthesize(self, y_bar: torch.Tensor, frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """y_bar (B, latent_dim, F) -> audio (B, 1, F * hop_length)."""
        return self.synthesis(y_bar / self.config.latent_gain, frame_lengths)

    def latent_context(self, z_symbols: torch.Tensor, frames: int, lengths: torch.Tensor | None = None) -> LatentContext:
        """Start coding (or decoding) y given integer z symbols (B, C_z, F_z), in float64."""
        z_lengths = None if lengths is None else conv_output_lengths(lengths, self.config.hyper_stride)
        return LatentContext(self.entropy_float64(), self.scale_table, z_symbols, frames, lengths, z_lengths)

    def clamp_symbols(self, x: torch.Tensor) -> torch.Tensor:
        m = self.config.symbol_offset
        return torch.round(x).clamp(-m, m - 1).long()

    # ---------------------------------------------------------- tokenizer API
    @torch.no_grad()
    def quantize(self, audio: torch.Tensor, lengths: torch.Tensor | None = None):
        """audio (B, 1, T) -> y symbols (B, latent_dim, F), z symbols (B, C_z, F_z) (int64, clamped),
        frame lengths (B,) | None, and the `LatentContext` after all slices (for its y_hat / means)."""
        y, z, y_lengths, _ = self.analyze(audio, lengths)
        z_sym = self.clamp_symbols(z)
        ctx = self.latent_context(z_sym, y.shape[-1], y_lengths)
        q = torch.zeros_like(y, dtype=torch.long)
        y64 = y.to(torch.float64)
        for i in range(self.config.num_slices):
            sl = self.entropy.slice(i)
            mean, _ = ctx.slice_parameters(i)
            q[:, sl] = self.clamp_symbols(y64[:, sl] - mean)
            ctx.set_slice(i, q[:, sl])
        return q, z_sym, y_lengths, ctx

    def pack_codes(self, q: torch.Tensor, z_symbols: torch.Tensor) -> torch.Tensor:
        """y symbols (B, C_y, F) and z symbols (B, C_z, F_z) -> codes (B, C_y + C_z, F) in [0, codebook_size)."""
        z_rep = z_symbols.repeat_interleave(self.config.hyper_stride, dim=-1)[..., : q.shape[-1]]
        return torch.cat([q, z_rep], dim=1) + self.config.symbol_offset

    def unpack_codes(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """codes (B, K, F) -> y symbols (B, C_y, F), z symbols (B, C_z, ceil(F / hyper_stride))."""
        c = self.config
        sym = codes.long() - c.symbol_offset
        return sym[:, : c.latent_dim], sym[:, c.latent_dim :, :: c.hyper_stride]

    def encode(self, audio: torch.Tensor, lengths: torch.Tensor | None = None, num_quantizers: int | None = None):
        """audio (B, 1, T) -> codes (B, latent_dim + hyper_latent_dim, ceil(T / hop)), frame lengths (B,)."""
        self.check_num_quantizers(num_quantizers)
        q, z_sym, frame_lengths, _ = self.quantize(audio, lengths)
        codes = self.pack_codes(q, z_sym)
        if frame_lengths is None:
            frame_lengths = torch.full((audio.shape[0],), codes.shape[-1], dtype=torch.long, device=codes.device)
        else:
            codes = codes * time_mask(frame_lengths, codes.shape[-1])[:, None, :]
        return codes, frame_lengths

    @torch.no_grad()
    def decode_symbols(self, q: torch.Tensor, z_symbols: torch.Tensor, frame_lengths: torch.Tensor | None = None):
        """y symbols (B, C_y, F), z symbols (B, C_z, F_z) -> audio (B, 1, F * hop)."""
        ctx = self.latent_context(z_symbols, q.shape[-1], frame_lengths)
        for i in range(self.config.num_slices):
            ctx.slice_parameters(i)
            ctx.set_slice(i, q[:, self.entropy.slice(i)])
        return self.synthesize_context(ctx, frame_lengths)

    @torch.no_grad()
    def synthesize_context(self, ctx: LatentContext, frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Audio (B, 1, F * hop) from a context whose slices are all set."""
        y_bar = ctx.latent().to(next(self.synthesis.parameters()).dtype)
        return self.synthesize(y_bar, frame_lengths)

    def decode(self, codes: torch.Tensor, frame_lengths: torch.Tensor | None = None):
        """codes (B, K, F) -> audio (B, 1, F * hop), sample lengths (B,)."""
        self.check_num_quantizers(codes.shape[1])
        q, z_sym = self.unpack_codes(codes)
        B, F_ = codes.shape[0], codes.shape[-1]
        if frame_lengths is not None and bool((frame_lengths == F_).all()):
            frame_lengths = None
        audio = self.decode_symbols(q, z_sym, frame_lengths)
        if frame_lengths is None:
            frame_lengths = torch.full((B,), F_, dtype=torch.long, device=codes.device)
        return audio, frame_lengths * self.config.hop_length

    # ---------------------------------------------------------- training
    def forward(self, input_values: torch.Tensor, lengths: torch.Tensor | None = None) -> RateAwareOutput:
        """Training pass: noisy likelihoods and straight-through rounding in training mode; in eval mode
        hard (clamped) rounding, so `bits` estimates the coded size under the continuous model."""
        y, z, y_lengths, z_lengths = self.analyze(input_values, lengths)
        if self.training:
            z_hat = ste_round(z)
            z_lik = self.prior.likelihood(z + torch.empty_like(z).uniform_(-0.5, 0.5))
        else:
            z_hat = self.clamp_symbols(z).to(z.dtype)
            z_lik = self.prior.likelihood(z_hat)
        f_mean, f_scale = self.entropy.hyper(z_hat, y.shape[-1], z_lengths, y_lengths)
        y_hats, y_bars, y_liks = [], [], []
        for i in range(self.config.num_slices):
            sl = self.entropy.slice(i)
            mu, sigma = self.entropy.slice_params(i, f_mean, f_scale, torch.cat(y_hats, 1) if y_hats else y[:, :0])
            if self.training:
                y_liks.append(gaussian_likelihood(y[:, sl] + torch.empty_like(mu).uniform_(-0.5, 0.5) - mu, sigma))
                y_hat = ste_round(y[:, sl] - mu) + mu
            else:
                q = self.clamp_symbols(y[:, sl] - mu).to(y.dtype)
                y_liks.append(gaussian_likelihood(q, sigma))
                y_hat = q + mu
            y_hats.append(y_hat)
            y_bars.append(y_hat + self.entropy.residual(i, f_mean, torch.cat(y_hats, 1)))
        audio = self.synthesize(torch.cat(y_bars, 1), y_lengths)

        y_lik = torch.cat(y_liks, 1)
        bits_y = -(torch.log2(y_lik) * _frame_mask(y_lengths, y_lik)).sum((1, 2))
        bits_z = -(torch.log2(z_lik) * _frame_mask(z_lengths, z_lik)).sum((1, 2))
        bits = bits_y + bits_z
        B, T = input_values.shape[0], input_values.shape[-1]
        samples = lengths.to(bits.dtype) if lengths is not None else bits.new_full((B,), T)
        seconds = float(samples.sum()) / self.config.sampling_rate
        stats = {"bps_y": float(bits_y.detach().sum()) / seconds, "bps_z": float(bits_z.detach().sum()) / seconds,
                 "bps": float(bits.detach().sum()) / seconds}
        return RateAwareOutput(
            audio=audio, commit_loss=bits.new_zeros(()), rate_loss=bits.sum() / samples.sum(), bits=bits,
            bits_y=bits_y, bits_z=bits_z, frame_lengths=y_lengths, stats=stats,
        )

    def rate_distortion_loss(self, output: RateAwareOutput, target: torch.Tensor,
                             lengths: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """L = rate_loss + rd_lambda x D with D = mean |x - x_hat| + the paper's multi-scale spectral loss
        (`tokenizer.losses.MultiScaleSpectralLoss`, the trainer's too), rate in bits per sample.
        target (B, 1, T). Returns {"loss", "rate", "distortion"}."""
        audio = output.audio[..., : target.shape[-1]]
        if lengths is not None:
            audio = audio * time_mask(lengths, audio.shape[-1])[:, None, :].to(audio.dtype)
        spectral = _spectral_loss(int(self.config.sampling_rate), str(target.device))
        distortion = (audio - target).abs().mean() + spectral(audio, target)
        loss = output.rate_loss + self.config.rd_lambda * distortion
        return {"loss": loss, "rate": output.rate_loss, "distortion": distortion}
