"""Masked Channel Residual Vector Quantization (Language-Codec, MCRVQ).

The first `num_parallel` quantizers run in parallel, quantizer i seeing only channels
[floor(i*D/P), floor((i+1)*D/P)) of the latent (others zeroed); distances use all D dims and each returns
full codebook rows. Quantizer P then codes the latent minus the sum of the parallel outputs, and every
later one the residual of the previous: ordinary RVQ.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..utils.errors import ConfigError
from .base import Quantizer, QuantizerOutput
from .vq import EMACodebook


class MaskedChannelRVQ(Quantizer):
    """z (B, dim, F) <-> codes (B, K, F), K in [num_parallel, num_quantizers]."""

    def __init__(self, dim: int, num_quantizers: int = 8, codebook_size: int = 1024, num_parallel: int = 3,
                 decay: float = 0.99, dead_code_threshold: float = 2.0):
        super().__init__()
        if not 1 <= num_parallel <= num_quantizers:
            raise ConfigError(f"num_parallel={num_parallel} must lie in [1, num_quantizers={num_quantizers}]")
        self.dim, self.num_quantizers, self.codebook_size = dim, num_quantizers, codebook_size
        self.num_parallel = num_parallel
        self.layers = nn.ModuleList(
            EMACodebook(dim, codebook_size, decay, dead_code_threshold=dead_code_threshold)
            for _ in range(num_quantizers)
        )

    def channel_slice(self, i: int) -> slice:
        """Latent channels quantizer i (< num_parallel) sees."""
        return slice(i * self.dim // self.num_parallel, (i + 1) * self.dim // self.num_parallel)

    def supported_num_quantizers(self) -> list[int]:
        # fewer than the parallel quantizers would leave latent channels unrepresented
        return list(range(self.num_parallel, self.num_quantizers + 1))

    def _masked(self, z: torch.Tensor, i: int) -> torch.Tensor:
        out = torch.zeros_like(z)
        s = self.channel_slice(i)
        out[:, s] = z[:, s]
        return out

    def _run(self, z: torch.Tensor, k: int, mask: torch.Tensor | None, train: bool):
        """Shared encode path: returns per-layer codes (B, F) and outputs (B, D, F), and the commit loss."""
        codes, outputs = [], []
        commit = z.new_zeros(())
        flat_mask = None if mask is None else mask.reshape(-1)
        residual = z
        for i in range(k):
            if i < self.num_parallel:
                x = self._masked(z, i)
            else:
                if i == self.num_parallel:
                    for q in outputs:
                        residual = residual - q.detach()
                else:
                    residual = residual - outputs[-1].detach()
                x = residual
            flat = x.transpose(1, 2).reshape(-1, self.dim)
            idx = self.layers[i].encode(flat)
            q = self.layers[i].decode(idx).view(z.shape[0], z.shape[2], self.dim).transpose(1, 2)
            if train:  # EMA step after the lookup, as in EnCodec: this batch uses the codebook it was coded with
                sel = flat if flat_mask is None else flat[flat_mask]
                self.layers[i].update(sel.detach(), idx if flat_mask is None else idx[flat_mask])
            if train:
                diff = (q.detach() - x).pow(2)
                if mask is not None:
                    m = mask[:, None, :].to(diff.dtype)
                    commit = commit + (diff * m).sum() / (m.sum() * self.dim).clamp_min(1)
                else:
                    commit = commit + diff.mean()
                q = x + (q - x).detach()  # straight-through estimator
            codes.append(idx.view(z.shape[0], z.shape[2]))
            outputs.append(q)
        return codes, outputs, commit

    def encode(self, z: torch.Tensor, num_quantizers: int | None = None) -> torch.Tensor:
        k = self.check_num_quantizers(num_quantizers)
        codes, _, _ = self._run(z, k, None, train=False)
        return torch.stack(codes, dim=1)

    def code_vectors(self, num_quantizers: int | None = None) -> torch.Tensor:
        """(K, V, D): each layer's codebook (the channel-group layers' vectors are zero outside their group)."""
        k = self.check_num_quantizers(num_quantizers)
        return torch.stack([self.layers[i].embed for i in range(k)])

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        self.check_num_quantizers(codes.shape[1])
        out = 0.0
        for i in range(codes.shape[1]):
            out = out + F.embedding(codes[:, i], self.layers[i].embed).transpose(1, 2)
        return out

    def forward(self, z: torch.Tensor, num_quantizers: int | None = None, mask: torch.Tensor | None = None) -> QuantizerOutput:
        """Quantize (B, D, F). In training: EMA updates, dead-code reset, commitment loss, straight-through."""
        k = self.check_num_quantizers(num_quantizers)
        codes, outputs, commit = self._run(z, k, mask, train=self.training)
        quantized = 0.0
        for q in outputs:
            quantized = quantized + q
        codes_t = torch.stack(codes, dim=1)
        stats = {}
        if self.training:
            for i in range(k):
                used = torch.bincount(codes_t[:, i].reshape(-1), minlength=self.codebook_size).float()
                p = used / used.sum()
                stats[f"perplexity/{i}"] = float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
                stats[f"usage/{i}"] = self.layers[i].usage()
        return QuantizerOutput(quantized=quantized, codes=codes_t, commit_loss=commit, stats=stats)
