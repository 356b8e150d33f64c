"""Reconstruction losses shared by the codec trainers and the tests."""

from __future__ import annotations

import torch


def stft_magnitude(x: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """|STFT| of (B, 1, T) or (B, T) audio with a Hann window -> (B, n_fft // 2 + 1, frames)."""
    x = x.reshape(-1, x.shape[-1])
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    return torch.stft(x, n_fft, hop_length, window=window, return_complex=True).abs()


def multi_scale_spectral_loss(
    pred: torch.Tensor, target: torch.Tensor, windows: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048),
    eps: float = 1e-5,
) -> torch.Tensor:
    """Mean over window sizes (hop = window / 4) of L1 + L2 between log magnitudes plus L1 of magnitudes.

    Windows default to 2^5..2^11 as in the Rate-Aware speech compression paper; windows longer than
    the signal are skipped.
    """
    total, n = pred.new_zeros(()), 0
    for w in windows:
        if w > target.shape[-1]:
            continue
        p, t = stft_magnitude(pred, w, w // 4), stft_magnitude(target, w, w // 4)
        lp, lt = torch.log(p + eps), torch.log(t + eps)
        total = total + (lp - lt).abs().mean() + (lp - lt).pow(2).mean() + (p - t).abs().mean()
        n += 1
    return total / max(n, 1)
