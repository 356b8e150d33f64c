"""iSTFT synthesis head (Vocos): hidden frames -> log-magnitude and phase -> waveform ("same" padding,
see `spectral.istft_same`)."""

from __future__ import annotations

import torch
from torch import nn

from .spectral import istft_same


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
