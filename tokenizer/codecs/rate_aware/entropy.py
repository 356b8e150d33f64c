"""Entropy models of the Rate-Aware codec: the factorized prior for z, the Gaussian conditional for y, and
the integer probability tables both ends of a bitstream share.

Training uses differentiable likelihoods (additive uniform noise, Ballé et al. 2018). Coding uses integer
tables: every symbol lives in the alphabet [-M, M - 1] (M = codebook_size // 2) and each table is a
vector of integer counts summing to 2**PRECISION with every count >= 1, so any symbol can be coded and
encoder and decoder use bit-identical distributions.
- z: one table per channel, built from the learned density (`FactorizedPrior.pmf`), stored in the model
  (safetensors) once built, so a stream decodes with the same tables on any machine.
- y: symbol q = round(y - mu) with a zero-mean Gaussian of scale sigma; sigma is replaced by the nearest
  entry of a fixed log-spaced `ScaleTable`, whose tables are computed once and stored too.
In both, the probability mass beyond the alphabet is folded into the two edge symbols, so the float
PMFs sum to one exactly (telescoping CDF differences) and out-of-range values clamp to an edge.

Why hand-written: CompressAI implements the same ideas, but its wheels pull a CUDA torch (see
ENVIRONMENT.md); the few formulas here are from the papers.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PRECISION = 16
"""Integer tables sum to 2**PRECISION: at most 16 bits per symbol, and a floor of 2**-16 per symbol costs
under 0.4% of the mass for a 256-symbol alphabet. The range coder rescales the tables deterministically
to its own 24-bit precision (the tests pin the stream to within 1% of the size these tables predict)."""

LIKELIHOOD_BOUND = 1e-9
"""Lower bound on training likelihoods, so -log2 stays finite (about 30 bits at most per symbol)."""

MEAN_STEP = 2.0**-10
"""Grid of the Gaussian means at coding time: mu is rounded to it, so y_hat = q + mu is exact in float64."""


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round with a straight-through gradient (identity backward)."""
    return x + (torch.round(x) - x).detach()


def quantize_pmf(pmf: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """Float PMFs (..., n) -> integer counts (..., n), each >= 1, summing to 2**precision per row.

    Deterministic: floor of the scaled mass plus one, and the rounding remainder goes to the most
    probable symbol (the first one on ties), so the cost of the floor is paid where it is cheapest.
    """
    pmf = np.asarray(pmf, dtype=np.float64)
    n = pmf.shape[-1]
    total = 1 << precision
    if n >= total:
        raise ValueError(f"alphabet of {n} symbols does not fit {precision}-bit tables")
    pmf = np.clip(pmf, 0.0, None)
    pmf = pmf / pmf.sum(-1, keepdims=True)
    counts = np.floor(pmf * (total - n)).astype(np.int64) + 1
    top = pmf.argmax(-1)[..., None]
    np.put_along_axis(counts, top, np.take_along_axis(counts, top, -1) + (total - counts.sum(-1))[..., None], -1)
    return counts


def table_bits(counts: torch.Tensor, table_index: torch.Tensor, symbols: torch.Tensor, half: int) -> torch.Tensor:
    """-log2 probability (bits) of integer `symbols` in [-half, half - 1] under rows `table_index` of
    `counts` (S, 2 * half). Same shape as `symbols`, float64."""
    c = counts.to(torch.float64)[table_index, symbols + half]
    return PRECISION - torch.log2(c)


# ------------------------------------------------------------------ Gaussian conditional
def standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x / math.sqrt(2.0))


def gaussian_likelihood(values: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Probability of the unit bin around `values` (already mean-removed) under N(0, scales):
    Phi((v + 0.5) / s) - Phi((v - 0.5) / s), evaluated on |v| in the lower tail for accuracy."""
    v = values.abs()
    upper = standard_normal_cdf((0.5 - v) / scales)
    lower = standard_normal_cdf((-0.5 - v) / scales)
    return (upper - lower).clamp_min(LIKELIHOOD_BOUND)


class ScaleTable:
    """A fixed log-spaced table of Gaussian scales, `num_scales` values from `min_scale` to `max_scale`.

    `index(sigma)` picks the nearest entry in log domain (float64, so the choice is reproducible);
    `pmf(half)` gives each entry's PMF over the alphabet [-half, half - 1] with tails folded into the edges.
    """

    def __init__(self, min_scale: float, max_scale: float, num_scales: int):
        if not 0 < min_scale < max_scale or num_scales < 2:
            raise ValueError(f"bad scale table ({min_scale}, {max_scale}, {num_scales})")
        self.min_scale, self.max_scale, self.num_scales = float(min_scale), float(max_scale), int(num_scales)
        self.log_step = (math.log(max_scale) - math.log(min_scale)) / (num_scales - 1)

    def scales(self) -> np.ndarray:
        return np.array([self.min_scale * math.exp(i * self.log_step) for i in range(self.num_scales)])

    def index(self, sigma: torch.Tensor) -> torch.Tensor:
        """Table index (int64) of each scale; any shape."""
        pos = (torch.log(sigma.to(torch.float64)) - math.log(self.min_scale)) / self.log_step
        return torch.round(pos).clamp(0, self.num_scales - 1).to(torch.int64)

    def pmf(self, half: int) -> np.ndarray:
        """(num_scales, 2 * half) float64 PMFs of round(N(0, s)) clamped to [-half, half - 1]."""
        edges = np.arange(-half, half + 1, dtype=np.float64) - 0.5  # bin edges of the 2*half symbols
        cdf = standard_normal_cdf(torch.from_numpy(edges[None, :] / self.scales()[:, None])).numpy()
        cdf[:, 0], cdf[:, -1] = 0.0, 1.0  # tails folded into the edge symbols
        return np.diff(cdf, axis=-1)


# ------------------------------------------------------------------ factorized prior (z)
class FactorizedPrior(nn.Module):
    """Ballé et al. (2018) non-parametric density, one per channel: a monotone chain of small dense
    layers whose output is the logit of the cumulative distribution.

    `likelihood(z)` (B, C, F) -> P(z - 0.5 < Z < z + 0.5) per element; `pmf(half)` -> (C, 2 * half) float64
    PMF over the integer alphabet with the tails folded into the edges (sums to one).
    """

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        self.channels = channels
        dims = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for k in range(len(dims) - 1):
            # softplus(matrix) starts at 1 / (scale * fan_out): the initial density is broad (init_scale wide).
            init = math.log(math.expm1(1.0 / scale / dims[k + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[k + 1], dims[k]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[k + 1], 1) - 0.5))
            if k < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[k + 1], 1)))

    def logits_cdf(self, x: torch.Tensor, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """x (C, 1, N) -> logit of the CDF at x, (C, 1, N). `params`: the parameters in another dtype."""
        p = params if params is not None else dict(self.named_parameters())
        for k in range(len(self.matrices)):
            x = torch.matmul(F.softplus(p[f"matrices.{k}"]), x) + p[f"biases.{k}"]
            if k < len(self.factors):
                x = x + torch.tanh(p[f"factors.{k}"]) * torch.tanh(x)
        return x

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        B, C, T = z.shape
        flat = z.permute(1, 0, 2).reshape(C, 1, B * T)
        lower = self.logits_cdf(flat - 0.5)
        upper = self.logits_cdf(flat + 0.5)
        # Evaluate in the tail where the sigmoid is accurate: flip the sign when both logits are positive.
        sign = -torch.sign(lower + upper).detach()
        lik = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        return lik.reshape(C, B, T).permute(1, 0, 2).clamp_min(LIKELIHOOD_BOUND)

    @torch.no_grad()
    def pmf(self, half: int) -> np.ndarray:
        edges = torch.arange(-half, half + 1, dtype=torch.float64) - 0.5
        params = {n: p.detach().to("cpu", torch.float64) for n, p in self.named_parameters()}
        cdf = torch.sigmoid(self.logits_cdf(edges.expand(self.channels, 1, -1), params)[:, 0, :]).numpy()
        cdf[:, 0], cdf[:, -1] = 0.0, 1.0  # tails folded into the edge symbols
        return np.diff(cdf, axis=-1)
