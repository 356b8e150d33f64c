"""iSTFT synthesis head (Vocos): hidden frames -> log-magnitude and phase -> waveform.

Why hand-written: `torch.istft` only offers "center" padding, which yields (F - 1) * hop samples; the
Vocos/Language-Codec head uses "same" padding (F * hop samples, trimming (win - hop) / 2 at each end),
and a padded batch needs the overlap-add window envelope of each item's own frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conv import time_mask


def istft_same(spec: torch.Tensor, n_fft: int, hop_length: int, frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Inverse STFT with "same" padding. spec: complex (B, n_fft // 2 + 1, F) -> audio (B, F * hop).

    With `frame_lengths`, frames past each item's end are ignored (as if the item were alone).
    """
    B, _, T = spec.shape
    window = torch.hann_window(n_fft, device=spec.device, dtype=spec.real.dtype)
    pad = (n_fft - hop_length) // 2
    frames = torch.fft.irfft(spec, n_fft, dim=1, norm="backward") * window[None, :, None]
    env = window.square()[None, :, None].expand(B, n_fft, T)
    if frame_lengths is not None:
        valid = time_mask(frame_lengths, T)[:, None, :].to(frames.dtype)
        frames, env = frames * valid, env * valid
    size = (T - 1) * hop_length + n_fft
    fold = dict(output_size=(1, size), kernel_size=(1, n_fft), stride=(1, hop_length))
    y = F.fold(frames, **fold)[:, 0, 0, pad:-pad]
    envelope = F.fold(env, **fold)[:, 0, 0, pad:-pad]
    return y / envelope.clamp_min(1e-11)


class ISTFTHead(nn.Module):
    """Hidden (B, F, dim) -> audio (B, F * hop_length): Linear to n_fft + 2 (log-magnitude, phase)."""

    def __init__(self, dim: int, n_fft: int, hop_length: int):
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.out = nn.Linear(dim, n_fft + 2)

    def forward(self, x: torch.Tensor, frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = self.out(x).transpose(1, 2)
        log_mag, phase = x.chunk(2, dim=1)
        # exp clipped at 1e2 as in Vocos: keeps early training from exploding.
        mag = torch.exp(log_mag).clamp(max=1e2)
        spec = mag * (torch.cos(phase) + 1j * torch.sin(phase))
        return istft_same(spec, self.n_fft, self.hop_length, frame_lengths)
