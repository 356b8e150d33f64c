"""Finite Scalar Quantization with dithered training and post-hoc residual decomposition (Stable Codec).

Each latent dimension is bounded by tanh and rounded to one of L evenly spaced values in [-1, 1]:

    Q_L(x) = 2 / (L - 1) * round((L - 1) * (tanh(x) + 1) / 2) - 1

(the paper writes floor(. + 1/2); we round half to even like the official code, which only differs on
exact ties). Training (`forward` in train mode) draws the number of levels L for the step from
`train_levels` ({17, 9, 5} in the paper) and, per item, replaces rounding by uniform noise of one step
width with probability `noise_prob` (0.5), leaves the item unquantised (tanh only) with probability
`continuous_prob` (0.25), and otherwise rounds with a straight-through gradient (0.25). These are the
shares of the official `DitheredFSQ` (two independent Bernoulli(0.5) masks); the paper's text only says
"mixing these two approaches with 50% probability", but the unquantised share is what trains the
continuous mode (`continuous`, §3.2.1).

After training, any L not below the smallest trained value can be used, either as one stage or, for odd
L = 2n + 1, as K residual stages: stage k quantizes the residual r_k with L levels over [-s_k, s_k],
s_k = (2n)^-k (clipped to that range first), and codes r_{k+1} = r_k - q_k. The sum of K stages lies on
the grid of (2n)^K + 1 levels, e.g. 5 levels x 2 stages = the 17-level grid, 3 x 4 = 17, 3 x 2 = 5.
Encoded latents never leave [-1, 1], but arbitrary token combinations (a language model's samples) can
sum to up to 1 + s_1 + ... (1.875 for 3 x 4); decoding clips the sum to [-1, 1], the range the decoder
was trained on, as the paper suggests ("this can be guarded against by clipping").

Token layout (one token per stage and frame, codebook L^d): the digits of a token are the per-dimension
level indices in [0, L), FIRST DIMENSION LEAST SIGNIFICANT: token = sum_i idx_i * L^i. This is the
order of stable-audio-tools' `DitheredFSQ` (basis = cumprod([1] + levels[:-1])) used by the official
stable-codec release, so tokens made by either implementation decode the same. Encoding runs in float64
like the official post-hoc path (its trained single-stage bottleneck runs in float32, which can only
differ on values within ~1e-7 of a rounding boundary); stage step sizes 2 s_k / (L - 1) are rounded to
float32 first and decoding sums float32 stage values, as the official code does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..utils.errors import ConfigError
from .base import Quantizer, QuantizerOutput


def effective_levels(levels: int, stages: int) -> int:
    """Levels per dimension of the grid K residual stages of L levels reach: L for one stage,
    (L - 1)^K + 1 for K stages of odd L."""
    return levels if stages == 1 else (levels - 1) ** stages + 1


def stage_scales(levels: int, stages: int) -> list[float]:
    """Range s_k of each stage: 1, then (L - 1)^-k."""
    return [1.0] + [float(levels - 1) ** -k for k in range(1, stages)]


def check_quantization(levels: int, stages: int, train_levels: Sequence[int]) -> None:
    """Raise ConfigError unless (levels, stages) is a usable post-hoc configuration for a model trained
    with `train_levels`: levels >= 2, stages >= 1, odd levels when stages > 1, and an effective grid
    not coarser than the smallest trained level count."""
    for name, v, lo in (("levels", levels, 2), ("stages", stages, 1)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ConfigError(f"FSQ {name} must be an int >= {lo}, got {v!r}")
    if stages > 1 and levels % 2 == 0:
        raise ConfigError(
            f"residual FSQ needs an odd number of levels (2n + 1) so each stage covers the previous step; "
            f"got levels={levels} with stages={stages}"
        )
    eff, lowest = effective_levels(levels, stages), min(train_levels)
    if eff < lowest:
        raise ConfigError(
            f"levels={levels} with stages={stages} gives a {eff}-level grid, below the smallest level count "
            f"the model was trained with ({lowest}, trained: {sorted(train_levels)}); the decoder never saw "
            "latents that coarse"
        )


class FiniteScalarQuantizer(Quantizer):
    """z (B, dim, F) pre-tanh latents <-> codes (B, K, F) in [0, levels ** dim), K <= stages.

    `levels` / `stages`: the post-hoc configuration used by encode/decode (change with `configure`);
    `train_levels`: level counts drawn during training; `noise_prob` / `continuous_prob`: per-item chances
    of noise / no quantization in training (the rest is rounded). Using the first K < stages codes is a
    valid coarser quantization (prefix).
    """

    def __init__(self, dim: int, levels: int = 17, stages: int = 1, train_levels: Sequence[int] = (17, 9, 5),
                 noise_prob: float = 0.5, continuous_prob: float = 0.25):
        super().__init__()
        self.dim = dim
        self.train_levels = [int(v) for v in train_levels]
        if not self.train_levels or min(self.train_levels) < 2:
            raise ConfigError(f"train_levels must be level counts >= 2, got {list(train_levels)}")
        if not (0.0 <= noise_prob <= 1.0 and 0.0 <= continuous_prob <= 1.0 and noise_prob + continuous_prob <= 1.0):
            raise ConfigError(f"noise_prob ({noise_prob}) and continuous_prob ({continuous_prob}) must lie in [0, 1] "
                              "and sum to at most 1")
        self.noise_prob, self.continuous_prob = noise_prob, continuous_prob
        self.configure(levels, stages)

    def configure(self, levels: int, stages: int = 1) -> None:
        """Select the post-hoc quantization (validated against `train_levels`)."""
        check_quantization(levels, stages, self.train_levels)
        self.levels, self.stages = levels, stages

    @property
    def codebook_size(self) -> int:
        return self.levels ** self.dim

    @property
    def scales(self) -> list[float]:
        return stage_scales(self.levels, self.stages)

    # ------------------------------------------------------------------ tokens <-> level indices
    def _basis(self, device) -> torch.Tensor:
        return self.levels ** torch.arange(self.dim, device=device, dtype=torch.long)

    def indices_to_tokens(self, idx: torch.Tensor) -> torch.Tensor:
        """Per-dimension level indices (B, dim, F) in [0, levels) -> tokens (B, F), first dim least significant."""
        return (idx.long() * self._basis(idx.device)[None, :, None]).sum(1)

    def tokens_to_indices(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (B, F) -> level indices (B, dim, F)."""
        return (tokens.long()[:, None, :] // self._basis(tokens.device)[None, :, None]) % self.levels

    def _step(self, scale: float, levels: int | None = None) -> float:
        # float32-rounded step, as the official buffers hold it (matters for L = 6: 2/5 is inexact)
        levels = self.levels if levels is None else levels
        return float(torch.tensor(2.0 * scale / (levels - 1), dtype=torch.float32))

    # ------------------------------------------------------------------ contract
    def supported_num_quantizers(self) -> list[int]:
        return list(range(1, self.stages + 1))

    def encode(self, z: torch.Tensor, num_quantizers: int | None = None) -> torch.Tensor:
        """z (B, dim, F) -> codes (B, K, F) int64."""
        k = self.check_num_quantizers(num_quantizers)
        residual = torch.tanh(z.double())
        codes = []
        for scale in self.scales[:k]:
            step = self._step(scale)
            x = residual.clamp(-scale, scale)
            idx = torch.round((x + scale) / step).clamp(0, self.levels - 1)
            residual = residual - (idx * step - scale)
            codes.append(self.indices_to_tokens(idx.long()))
        return torch.stack(codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, K, F), K <= stages -> quantized latent (B, dim, F) float32: the sum of the K stages,
        clipped to [-1, 1] (only token combinations an encoder never makes reach beyond)."""
        self.check_num_quantizers(codes.shape[1])
        out = 0
        for k, scale in enumerate(self.scales[: codes.shape[1]]):
            step = torch.tensor(self._step(scale), dtype=torch.float32, device=codes.device)
            out = out + (self.tokens_to_indices(codes[:, k]).float() * step - scale)
        return out.clamp(-1.0, 1.0)

    def code_vectors(self, num_quantizers: int | None = None) -> torch.Tensor:
        """(K, levels ** dim, dim): the value of every token of each of the first K stages (their sum is
        `decode` before its clip to [-1, 1])."""
        k = self.check_num_quantizers(num_quantizers)
        idx = self.tokens_to_indices(torch.arange(self.codebook_size)[None])[0].T.float()  # (V, dim)
        return torch.stack([idx * torch.tensor(self._step(s), dtype=torch.float32) - s for s in self.scales[:k]])

    def continuous(self, z: torch.Tensor) -> torch.Tensor:
        """The bounded latent tanh(z) without quantization (continuous mode), (B, dim, F)."""
        return torch.tanh(z)

    def forward(self, z: torch.Tensor, num_quantizers: int | None = None,
                mask: torch.Tensor | None = None) -> QuantizerOutput:
        """Eval: quantized = decode(encode(z)) exactly, with an identity gradient to z's tanh.
        Train: L drawn from `train_levels`; each item gets noise (prob `noise_prob`), stays unquantised
        (prob `continuous_prob`) or is rounded; `codes` are the rounded indices whatever the item got."""
        u = torch.tanh(z)
        ste = u - u.detach()  # exactly 0, gradient 1: adding it keeps values bit-exact
        if not self.training:
            codes = self.encode(z, num_quantizers)
            quantized = self.decode(codes).to(z.dtype) + ste
            return QuantizerOutput(quantized, codes, z.new_zeros(()), {})
        levels = self.train_levels[int(torch.randint(len(self.train_levels), (1,)))]
        step = 2.0 / (levels - 1)
        with torch.no_grad():
            idx = torch.round((u + 1) / step).clamp(0, levels - 1)
        rounded = (idx * step - 1) + ste
        noisy = u + (torch.rand_like(u) - 0.5) * step
        draw = torch.rand(z.shape[0], 1, 1, device=z.device)
        use_noise = draw < self.noise_prob
        keep = (draw >= self.noise_prob) & (draw < self.noise_prob + self.continuous_prob)
        quantized = torch.where(use_noise, noisy, torch.where(keep, u, rounded))
        codes = (idx.long() * levels ** torch.arange(self.dim, device=z.device)[None, :, None]).sum(1, keepdim=True)
        stats = {"fsq/levels": float(levels), "fsq/noise_fraction": float(use_noise.float().mean()),
                 "fsq/continuous_fraction": float(keep.float().mean())}
        return QuantizerOutput(quantized, codes, z.new_zeros(()), stats)

    def bits_per_frame(self, num_quantizers: int | None = None) -> int:
        """sum over stages of ceil(log2(levels ** dim))."""
        return self.check_num_quantizers(num_quantizers) * math.ceil(math.log2(self.codebook_size))
