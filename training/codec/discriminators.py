"""GAN discriminators for codec training. Each takes audio (B, 1, T) and returns
(logits: list of tensors, one per sub-discriminator; features: list, per sub-discriminator, of the
feature maps of its layers) for the hinge and feature-matching losses in `train/losses.py`.

- `MultiPeriodDiscriminator` (HiFi-GAN): the waveform folded into (T / p, p) for periods 2, 3, 5, 7, 11,
  2-D convolutions along time only.
- `MultiResolutionDiscriminator` (UnivNet): 2-D convolutions over linear magnitude spectrograms at
  several (n_fft, hop, window) resolutions.
- `MultiScaleSTFTDiscriminator` (EnCodec): 2-D convolutions over the real and imaginary parts of complex
  STFTs at several sizes (hop = n_fft / 4); Stable Codec's options: inharmonic FFT sizes (so no two scales
  share bin spacings) and magnitude compression |X| -> |X|^c keeping the phase (c = 0.5).

`channels` sets each discriminator's base width, so a tiny configuration is cheap.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

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


class STFTDiscriminator(nn.Module):
    """One EnCodec STFT discriminator: input (B, 2, frames, bins) = real and imaginary parts; a (3, 9)
    conv, three (3, 9) convs dilated 1, 2, 4 in time with stride 2 in frequency, a (3, 3) conv, then a
    (3, 3) conv to one logit map. `compress` c < 1 maps |X| to |X|^c keeping the phase."""

    def __init__(self, n_fft: int, channels: int = 32, compress: float = 1.0):
        super().__init__()
        self.n_fft, self.hop_length, self.compress = n_fft, max(1, n_fft // 4), compress
        c = channels
        self.layers = nn.ModuleList([weight_norm(nn.Conv2d(2, c, (3, 9), padding=(1, 4)))])
        for d in (1, 2, 4):
            self.layers.append(weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), dilation=(d, 1), padding=(d, 4))))
        self.layers.append(weight_norm(nn.Conv2d(c, c, (3, 3), padding=(1, 1))))
        self.post = weight_norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        with torch.autocast(x.device.type, enabled=False):
            x = x.reshape(-1, x.shape[-1]).float()
            window = torch.hann_window(self.n_fft, device=x.device)
            spec = torch.stft(x, self.n_fft, self.hop_length, window=window, return_complex=True)
            if self.compress != 1.0:
                # |X|^c e^{i angle X} = X |X|^(c-1); the floor keeps the gradient finite at |X| = 0.
                spec = spec * spec.abs().clamp_min(1e-8).pow(self.compress - 1)
            z = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)
        return _run(self.layers, self.post, z)


class MultiScaleSTFTDiscriminator(nn.Module):
    def __init__(self, n_ffts=(1024, 2048, 512, 256, 128), channels: int = 32, compress: float = 1.0):
        super().__init__()
        self.discriminators = nn.ModuleList(STFTDiscriminator(int(n), channels, compress) for n in n_ffts)

    def forward(self, x: torch.Tensor) -> Output:
        outs = [d(x) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


class Discriminators(nn.Module):
    """The active discriminators of a `DiscConfig`, their outputs concatenated."""

    def __init__(self, cfg: DiscConfig):
        super().__init__()
        self.parts = nn.ModuleDict()
        if cfg.mpd:
            self.parts["mpd"] = MultiPeriodDiscriminator(tuple(cfg.mpd_periods), cfg.mpd_channels, cfg.mpd_max_channels)
        if cfg.mrd:
            self.parts["mrd"] = MultiResolutionDiscriminator(tuple(map(tuple, cfg.mrd_resolutions)), cfg.mrd_channels)
        if cfg.mstft:
            sizes = STABLE_CODEC_FFT_SIZES if cfg.mstft_inharmonic else tuple(cfg.mstft_n_ffts)
            self.parts["mstft"] = MultiScaleSTFTDiscriminator(sizes, cfg.mstft_channels, cfg.mstft_compress)

    def forward(self, x: torch.Tensor) -> Output:
        logits, features = [], []
        for part in self.parts.values():
            lg, ft = part(x)
            logits += lg
            features += ft
        return logits, features
