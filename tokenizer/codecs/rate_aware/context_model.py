"""The Rate-Aware codec's channel-wise context model: h_s, the slice parameter nets e_i and the latent
residual prediction nets (`ChannelwiseEntropyModel`), and `LatentContext`, which walks them slice by slice
exactly as a decoder must (the coding distributions of `entropy.py` are built from its outputs)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .rwkv import RWKVBlock
from .entropy import MEAN_STEP, ScaleTable
from .transforms import HyperSynthesis


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

    def __init__(self, latent_dim: int, num_slices: int, hyper_latent_dim: int, hyper_channels: int,
                 hyper_stride: int, hidden: int, min_scale: float, crm_downsample: int, chunk_size: int):
        super().__init__()
        self.num_slices = num_slices
        self.slice_channels = cs = latent_dim // num_slices
        self.hyper_synthesis = HyperSynthesis(hyper_latent_dim, hyper_channels, latent_dim, hyper_stride,
                                              crm_downsample, chunk_size)
        self.param_nets = nn.ModuleList(
            SliceParameterNet(2 * latent_dim + i * cs, hidden, cs, min_scale, chunk_size) for i in range(num_slices)
        )
        self.residual_nets = nn.ModuleList(
            nn.Sequential(nn.Linear(latent_dim + (i + 1) * cs, hidden), nn.GELU(), nn.Linear(hidden, cs))
            for i in range(num_slices)
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
