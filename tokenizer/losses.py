"""Reconstruction losses shared by the codec trainer and the tests (spectrogram helpers: `modules.spectral`).

- `MultiScaleSpectralLoss`: the Rate-Aware speech compression paper's multi-scale spectral loss.
"""

from __future__ import annotations

import torch
from torch import nn

from .utils.errors import ConfigError
from .modules.spectral import mel_filters, stft_magnitude


def flat_float(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, T) or (B, T) -> float32 (B, T)."""
    return x.reshape(-1, x.shape[-1]).float()


class MultiScaleSpectralLoss(nn.Module):
    """Rate-Aware paper's multi-scale spectral loss: for each window w (hop w / 4), L1 + L2 between log
    power spectra and between log mel power spectra (w // 8 mel bands, at most 128), averaged over the
    windows that fit in the signal. Equal inputs give exactly 0."""

    def __init__(self, sampling_rate: int, windows: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048),
                 eps: float = 1e-5):
        super().__init__()
        self.windows, self.eps = tuple(int(w) for w in windows), eps
        for w in self.windows:
            self.register_buffer(f"fb{w}", mel_filters(sampling_rate, w, max(4, min(w // 8, 128))), persistent=False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.autocast(pred.device.type, enabled=False):
            pred, target = flat_float(pred), flat_float(target)
            total, n = pred.new_zeros(()), 0
            for w in self.windows:
                if w > target.shape[-1]:
                    continue
                fb = getattr(self, f"fb{w}")
                p, t = stft_magnitude(pred, w, w // 4).square(), stft_magnitude(target, w, w // 4).square()
                for a, b in ((p, t), (torch.einsum("bft,fm->bmt", p, fb), torch.einsum("bft,fm->bmt", t, fb))):
                    d = torch.log(a + self.eps) - torch.log(b + self.eps)
                    total = total + d.abs().mean() + d.square().mean()
                n += 1
            if n == 0:
                raise ConfigError(f"multi-scale spectral loss: signal of {target.shape[-1]} samples is shorter "
                                  f"than every window {self.windows}")
            return total / n
