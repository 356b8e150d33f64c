"""Euclidean vector quantizer with an EMA codebook and dead-code re-initialisation.

The codebook is a buffer updated by exponential moving averages of assigned vectors (VQ-VAE-2 /
EnCodec), not by gradients. Codes whose EMA usage falls below `dead_code_threshold` are replaced by
random vectors of the current batch, the usual defence against codebook collapse. Under
torch.distributed the statistics are all-reduced so every rank keeps the same codebook.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t


@torch.no_grad()
def kmeans(x: torch.Tensor, k: int, iters: int = 10) -> torch.Tensor:
    """k centroids of x (N, dim) by Lloyd's algorithm from random rows (distinct when N >= k); empty
    clusters are re-seeded with random rows. Small and dependency-free: it runs once per codebook."""
    n = x.shape[0]
    idx = torch.randperm(n, device=x.device)[:k] if n >= k else torch.randint(0, n, (k,), device=x.device)
    centroids = x[idx].clone()
    for _ in range(iters):
        assign = torch.cdist(x, centroids).argmin(1)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        empty = counts == 0
        centroids = torch.where(empty[:, None], x[torch.randint(0, x.shape[0], (k,), device=x.device)],
                                sums / counts.clamp_min(1)[:, None])
    return centroids


class EMACodebook(nn.Module):
    """One codebook of `codebook_size` vectors of `dim` (buffers `embed`, `embed_avg`, `cluster_size`, `inited`).

    encode(x (N, dim)) -> indices (N,); decode(indices (...)) -> vectors (..., dim).
    """

    def __init__(self, dim: int, codebook_size: int, decay: float = 0.99, eps: float = 1e-5,
                 dead_code_threshold: float = 2.0):
        super().__init__()
        self.dim, self.codebook_size = dim, codebook_size
        self.decay, self.eps, self.dead_code_threshold = decay, eps, dead_code_threshold
        embed = torch.randn(codebook_size, dim)
        self.register_buffer("inited", torch.zeros(1))
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("embed", embed)
        self.register_buffer("embed_avg", embed.clone())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        # Same expansion of the squared distance as EnCodec so converted checkpoints pick the same codes.
        dist_ = x.pow(2).sum(1, keepdim=True) - 2 * x @ self.embed.t() + self.embed.pow(2).sum(1)[None, :]
        return dist_.argmin(dim=-1)

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        return F.embedding(indices, self.embed)

    @torch.no_grad()
    def _random_rows(self, x: torch.Tensor, n: int) -> torch.Tensor:
        idx = torch.randint(0, x.shape[0], (n,), device=x.device)
        rows = x[idx]
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(rows, 0)
        return rows

    @torch.no_grad()
    def update(self, x: torch.Tensor, indices: torch.Tensor) -> None:
        """EMA update from vectors x (N, dim) assigned to `indices` (N,); training only."""
        if x.shape[0] == 0:
            return
        if not bool(self.inited):
            # k-means on the first batch (a batch smaller than the codebook leaves the extra codes at
            # random rows). Done within one step so that a resumed run initialises exactly as a fresh one.
            init = kmeans(x.detach(), self.codebook_size, iters=10)
            if dist.is_available() and dist.is_initialized():
                dist.broadcast(init, 0)
            self.embed.copy_(init)
            self.embed_avg.copy_(init)
            # Usage starts at zero: a code the data never picks is re-initialised within a few steps,
            # instead of surviving ~log(threshold)/log(decay) steps while the latents drift.
            self.cluster_size.zero_()
            self.inited.fill_(1.0)
            return
        onehot = F.one_hot(indices, self.codebook_size).to(x.dtype)
        counts = _all_reduce(onehot.sum(0))
        sums = _all_reduce(onehot.t() @ x)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n
        self.embed.copy_(self.embed_avg / smoothed[:, None])
        dead = self.cluster_size < self.dead_code_threshold
        if bool(dead.any()):
            rows = self._random_rows(x, int(dead.sum()))
            self.embed[dead] = rows
            self.embed_avg[dead] = rows * self.dead_code_threshold
            self.cluster_size[dead] = self.dead_code_threshold

    def usage(self) -> float:
        """Fraction of codes whose EMA usage is above the dead-code threshold."""
        return float((self.cluster_size >= self.dead_code_threshold).float().mean())
