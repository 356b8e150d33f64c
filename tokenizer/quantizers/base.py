"""The quantizer contract every codec's bottleneck follows.

A quantizer maps a latent `z` FloatTensor (B, D, F) to codes LongTensor (B, K, F) and back:
`encode(z) -> codes`, `decode(codes) -> z_q`, and `forward(z)` (training) returns a `QuantizerOutput`
whose `quantized` equals `decode(encode(z))` exactly in eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from ..utils.errors import ConfigError


def validate_num_quantizers(k, supported: Sequence[int], default: int, what: str = "", reason: str = "") -> int:
    """The one check of a quantizer count (codes per frame) for quantizers and codec models alike: `k` must
    be an int (not a bool) in `supported`; None means `default`. `what` names the owner and `reason` says
    why a value is refused, both in the ConfigError."""
    k = default if k is None else k
    if not isinstance(k, int) or isinstance(k, bool):
        raise ConfigError(f"num_quantizers must be an int, got {k!r}")
    if k not in supported:
        owner = f" by {what}" if what else ""
        why = f" ({reason})" if reason else ""
        raise ConfigError(f"num_quantizers={k} not supported{owner}{why}; choose one of {list(supported)}")
    return k


@dataclass
class QuantizerOutput:
    """quantized: (B, D, F) (straight-through in training); codes: (B, K, F) int64;
    commit_loss: scalar; stats: floats for logging (codebook usage, perplexity...)."""

    quantized: torch.Tensor
    codes: torch.Tensor
    commit_loss: torch.Tensor
    stats: dict = field(default_factory=dict)


class Quantizer(nn.Module):
    def supported_num_quantizers(self) -> list[int]:
        """Codes per frame this quantizer can produce (prefixes of its stages)."""
        raise NotImplementedError

    def check_num_quantizers(self, k: int | None) -> int:
        """Validate a count for standalone use; None means all stages."""
        supported = self.supported_num_quantizers()
        return validate_num_quantizers(k, supported, max(supported), type(self).__name__)

    def encode(self, z: torch.Tensor, num_quantizers: int | None = None) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def code_vectors(self, num_quantizers: int | None = None) -> torch.Tensor:
        """(K, V, D): the latent vector each code of each of the first K stages stands for, for quantizers
        whose `decode` is a sum over stages: decode(codes)[b, :, f] = sum_k table[k, codes[b, k, f]] (before
        any final clip). Quantizers that are not such a sum raise NotImplementedError."""
        raise NotImplementedError(f"{type(self).__name__} has no per-code latent table")

    def forward(self, z: torch.Tensor, num_quantizers: int | None = None, mask: torch.Tensor | None = None) -> QuantizerOutput:
        raise NotImplementedError
