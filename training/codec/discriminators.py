"""GAN discriminators for codec training. Each takes audio (B, 1, T) and returns
(logits: list of tensors, one per sub-discriminator; features: list, per sub-discriminator, of the
feature maps of its layers) for the hinge and feature-matching losses in `training/codec/losses.py`.

- `MultiPeriodDiscriminator` (HiFi-GAN): the waveform folded into (T / p, p) for periods 2, 3, 5, 7, 11,
  2-D convolutions along time only.
- `MultiResolutionDiscriminator` (UnivNet): 2-D convolutions over linear magnitude spectrograms at
  several (n_fft, hop, window) resolutions.
- `MultiScaleDiscriminator` (MelGAN / HiFi-GAN; Language-Codec §3.4): grouped strided 1-D convolutions
  over the raw waveform at 1x, 2x and 4x average-pooled scales.
- `MultiScaleSTFTDiscriminator` (EnCodec): 2-D convolutions over the real and imaginary parts of complex
  STFTs at several sizes (hop = n_fft / 4 by default). Stable Codec's options (App. B.5, B.5.1):
  inharmonic FFT sizes (no two scales share bin spacings) with hop = n_fft / 2, normalised STFTs, and
  the power-law weighting X -> X |X|^alpha (alpha = 0.5: magnitudes become |X|^1.5, so quiet bins count
  less and spectral peaks more; the paper found the discriminator overfitting to inaudible bins).

`channels` sets each discriminator's base width, so a tiny configuration is cheap. `Discriminators.groups`
says how many sub-discriminators each family contributes, for the per-family loss aggregation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from .config import DiscConfig

STABLE_CODEC_FFT_SIZES = (78, 126, 206, 334, 542, 876, 1418, 2296)
LEAK = 0.1

Output = tuple[list[torch.Tensor], list[list[torch.Tensor]]]


def _run(layers: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Conv stack with leaky ReLU; returns (flattened logits (B, N), [every layer's output])."""
    features = []
    for layer in layers:
        x = F.leaky_relu(layer(x), LEAK)
        features.append(x)
    x = post(x)
    features.append(x)
    return x.flatten(1), features


class PeriodDiscriminator(nn.Module):
    """One HiFi-GAN period discriminator: kernels (5, 1) with stride (3, 1), widths c, 4c, 16c, 32c, 32c
    (capped at `max_channels`), then a (3, 1) conv to one logit map."""

    def __init__(self, period: int, channels: int = 32, max_channels: int = 1024):
        super().__init__()
        self.period = period
        widths = [min(channels * m, max_channels) for m in (1, 4, 16, 32)]
        chans = [1, *widths]
        self.layers = nn.ModuleList(
            weight_norm(nn.Conv2d(a, b, (5, 1), (3, 1), padding=(2, 0))) for a, b in zip(chans[:-1], chans[1:])
        )
        self.layers.append(weight_norm(nn.Conv2d(widths[-1], widths[-1], (5, 1), 1, padding=(2, 0))))
        self.post = weight_norm(nn.Conv2d(widths[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        B, C, T = x.shape
        if T % self.period:
            pad = self.period - T % self.period
            x = F.pad(x, (0, pad), mode="reflect" if pad < T else "constant")
        x = x.view(B, C, -1, self.period)
        return _run(self.layers, self.post, x)


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), channels: int = 32, max_channels: int = 1024):
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, channels, max_channels) for p in periods)

    def forward(self, x: torch.Tensor) -> Output:
        outs = [d(x) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


class ResolutionDiscriminator(nn.Module):
    """One UnivNet spectrogram discriminator on |STFT| (B, 1, bins, frames): a (3, 9) conv, three (3, 9)
    convs with stride 2 along time, a (3, 3) conv, then a (3, 3) conv to one logit map."""

    def __init__(self, n_fft: int, hop_length: int, win_length: int, channels: int = 32):
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        c = channels
        self.layers = nn.ModuleList([weight_norm(nn.Conv2d(1, c, (3, 9), padding=(1, 4)))])
        for _ in range(3):
            self.layers.append(weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))))
        self.layers.append(weight_norm(nn.Conv2d(c, c, (3, 3), padding=(1, 1))))
        self.post = weight_norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        with torch.autocast(x.device.type, enabled=False):
            x = x.reshape(-1, x.shape[-1]).float()
            window = torch.hann_window(self.win_length, device=x.device)
            mag = torch.stft(x, self.n_fft, self.hop_length, self.win_length, window, return_complex=True).abs()
        return _run(self.layers, self.post, mag[:, None])


class MultiResolutionDiscriminator(nn.Module):
    def __init__(self, resolutions=((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048)), channels: int = 32):
        super().__init__()
        self.discriminators = nn.ModuleList(ResolutionDiscriminator(*map(int, r), channels) for r in resolutions)

    def forward(self, x: torch.Tensor) -> Output:
        outs = [d(x) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


def scale_spectrum(spec: torch.Tensor, power: float) -> torch.Tensor:
    """Stable Codec's power law on a complex spectrogram: X |X|^power (phase kept, magnitude |X|^(1 + power)).

    power = 0.5 (App. B.5.1) maps |X| = 0.01 and 1 to 1e-3 and 1: bins 40 dB below the peak end 60 dB below
    it. The offset 1e-6 inside the power follows stable-audio-tools (finite gradient at |X| = 0)."""
    return spec if power == 0 else spec * (spec.abs() + 1e-6).pow(power)


class STFTDiscriminator(nn.Module):
    """One EnCodec STFT discriminator: input (B, 2, frames, bins) = real and imaginary parts; a (3, 9)
    conv, three (3, 9) convs dilated 1, 2, 4 in time with stride 2 in frequency, a (3, 3) conv, then a
    (3, 3) conv to one logit map. `hop_length` defaults to n_fft / 4; `normalized` scales the STFT by
    1 / sqrt(n_fft) (torch.stft's `normalized`); `spec_scale_pow` weights bins by |X|^power (`scale_spectrum`)."""

    def __init__(self, n_fft: int, channels: int = 32, spec_scale_pow: float = 0.0, hop_length: int | None = None,
                 normalized: bool = False):
        super().__init__()
        self.n_fft, self.spec_scale_pow, self.normalized = n_fft, spec_scale_pow, normalized
        self.hop_length = max(1, n_fft // 4) if hop_length is None else int(hop_length)
        c = channels
        self.layers = nn.ModuleList([weight_norm(nn.Conv2d(2, c, (3, 9), padding=(1, 4)))])
        for d in (1, 2, 4):
            self.layers.append(weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), dilation=(d, 1), padding=(d, 4))))
        self.layers.append(weight_norm(nn.Conv2d(c, c, (3, 3), padding=(1, 1))))
        self.post = weight_norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)))

    def spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) -> the scaled complex STFT (B, bins, frames) the convolutions see, in float32."""
        with torch.autocast(x.device.type, enabled=False):
            x = x.reshape(-1, x.shape[-1]).float()
            window = torch.hann_window(self.n_fft, device=x.device)
            spec = torch.stft(x, self.n_fft, self.hop_length, window=window, normalized=self.normalized,
                              return_complex=True)
            return scale_spectrum(spec, self.spec_scale_pow)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = self.spectrogram(x)
        z = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)
        return _run(self.layers, self.post, z)


class MultiScaleSTFTDiscriminator(nn.Module):
    def __init__(self, n_ffts=(1024, 2048, 512, 256, 128), channels: int = 32, spec_scale_pow: float = 0.0,
                 hop_divisor: int = 4, normalized: bool = False):
        super().__init__()
        self.discriminators = nn.ModuleList(
            STFTDiscriminator(int(n), channels, spec_scale_pow, max(1, int(n) // hop_divisor), normalized)
            for n in n_ffts)

    def forward(self, x: torch.Tensor) -> Output:
        outs = [d(x) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


class ScaleDiscriminator(nn.Module):
    """One MelGAN / HiFi-GAN scale discriminator on the waveform (B, 1, T): 1-D convs of widths c, c, 2c,
    4c, 8c, 8c, 8c (capped at `max_channels`; HiFi-GAN: c = 128, cap 1024), kernels 15, 41 x 5, 5, strides
    1, 2, 2, 4, 4, 1, 1, groups 1, 4, 16, 16, 16, 16, 1 (reduced to divide small widths), then a kernel-3
    conv to one logit map. `spectral`: spectral instead of weight normalisation (HiFi-GAN's raw scale)."""

    def __init__(self, channels: int = 128, max_channels: int = 1024, spectral: bool = False):
        super().__init__()
        norm = spectral_norm if spectral else weight_norm
        widths = [min(channels * m, max_channels) for m in (1, 1, 2, 4, 8, 8, 8)]
        chans = [1, *widths]
        specs = [(15, 1, 1), (41, 2, 4), (41, 2, 16), (41, 4, 16), (41, 4, 16), (41, 1, 16), (5, 1, 1)]
        self.layers = nn.ModuleList(
            norm(nn.Conv1d(a, b, k, s, padding=k // 2, groups=math.gcd(g, a, b)))
            for (a, b), (k, s, g) in zip(zip(chans[:-1], chans[1:]), specs))
        self.post = norm(nn.Conv1d(widths[-1], 1, 3, 1, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _run(self.layers, self.post, x)


class MultiScaleDiscriminator(nn.Module):
    """`scales` scale discriminators; scale i sees the waveform average-pooled i times (kernel 4, stride 2,
    padding 2: HiFi-GAN), i.e. at 1x, 2x, 4x downsampling for 3 scales. The raw scale uses spectral norm."""

    def __init__(self, scales: int = 3, channels: int = 128, max_channels: int = 1024):
        super().__init__()
        self.discriminators = nn.ModuleList(ScaleDiscriminator(channels, max_channels, spectral=i == 0)
                                            for i in range(scales))
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, x: torch.Tensor) -> Output:
        logits, features = [], []
        for i, d in enumerate(self.discriminators):
            if i:
                x = self.pool(x)
            lg, ft = d(x)
            logits.append(lg)
            features.append(ft)
        return logits, features


class Discriminators(nn.Module):
    """The active discriminators of a `DiscConfig`, their outputs concatenated (families in the order
    mpd, mrd, msd, mstft); `groups`: the number of sub-discriminators of each active family, in that order."""

    def __init__(self, cfg: DiscConfig):
        super().__init__()
        self.parts = nn.ModuleDict()
        if cfg.mpd:
            self.parts["mpd"] = MultiPeriodDiscriminator(tuple(cfg.mpd_periods), cfg.mpd_channels, cfg.mpd_max_channels)
        if cfg.mrd:
            self.parts["mrd"] = MultiResolutionDiscriminator(tuple(map(tuple, cfg.mrd_resolutions)), cfg.mrd_channels)
        if cfg.msd:
            self.parts["msd"] = MultiScaleDiscriminator(cfg.msd_scales, cfg.msd_channels, cfg.msd_max_channels)
        if cfg.mstft:
            sizes = STABLE_CODEC_FFT_SIZES if cfg.mstft_inharmonic else tuple(cfg.mstft_n_ffts)
            self.parts["mstft"] = MultiScaleSTFTDiscriminator(sizes, cfg.mstft_channels, cfg.mstft_spec_scale_pow,
                                                              cfg.mstft_hop_divisor, cfg.mstft_normalized)

    @property
    def groups(self) -> list[int]:
        return [len(part.discriminators) for part in self.parts.values()]

    def forward(self, x: torch.Tensor) -> Output:
        logits, features = [], []
        for part in self.parts.values():
            lg, ft = part(x)
            logits += lg
            features += ft
        return logits, features
