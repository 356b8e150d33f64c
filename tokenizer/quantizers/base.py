"""The quantizer contract every codec's bottleneck follows.

A quantizer maps a latent `z` FloatTensor (B, D, F) to codes LongTensor (B, K, F) and back:
`encode(z) -> codes`, `decode(codes) -> z_q`, and `forward(z)` (training) returns a `QuantizerOutput`
whose `quantized` equals `decode(encode(z))` exactly in eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class QuantizerOutput:
    """quantized: (B, D, F) (straight-through in training); codes: (B, K, F) int64;
    commit_loss: scalar; stats: floats for logging (codebook usage, perplexity...)."""

    quantized: torch.Tensor
    codes: torch.Tensor
    commit_loss: torch.Tensor
    stats: dict = field(default_factory=dict)


class Quantizer(nn.Module):
    def encode(self, z: torch.Tensor, num_quantizers: int | None = None) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, z: torch.Tensor, num_quantizers: int | None = None, mask: torch.Tensor | None = None) -> QuantizerOutput:
        raise NotImplementedError
