"""The Rate-Aware codec's learned transforms (see `modeling_rate_aware` for how they fit together):
spectral features (power-law compressed "same" STFT), g_a (`Analysis`), g_s (`Synthesis`), h_a
(`HyperAnalysis`) and h_s (`HyperSynthesis`). All take plain arguments, work on (B, C, F) tensors with
per-item frame lengths, and zero-pad each item from its own length (batch invariance)."""

from __future__ import annotations

import torch
from torch import nn

from ...modules.conv import PaddedConv1d
from .crm import CRMBlock
from ...modules.istft import ISTFTHead
from ...modules.spectral import stft_same

_CONV = dict(pad_mode="zeros")


def spectral_features(audio: torch.Tensor, n_fft: int, hop_length: int, compression: float) -> torch.Tensor:
    """audio (B, 1, T) -> (B, 2 * (n_fft // 2 + 1), ceil(T / hop)): real and imaginary parts of the "same"
    STFT with magnitudes compressed as |X|^compression."""
    spec = stft_same(audio[:, 0], n_fft, hop_length)
    spec = spec * (spec.abs() + 1e-5) ** (compression - 1.0)
    return torch.cat([spec.real, spec.imag], dim=1)


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
