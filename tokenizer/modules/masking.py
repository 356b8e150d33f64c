"""Length masks: the one place that turns per-item lengths of a padded batch into a mask.

Every padded batch in the toolkit (audio samples, latent frames, codes, attention keys) marks item b's
valid steps as positions [0, lengths[b]).
"""

from __future__ import annotations

import torch


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """BoolTensor (B, max_len), on `lengths`' device: True on the first lengths[b] positions of row b."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def zero_past_lengths(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """`x` (B, ..., T) with every step past each item's length set to 0 (so a zero-padded item in a batch
    looks exactly as it does alone). Returns `x` itself when nothing is padded (lengths None or all T)."""
    if lengths is None or bool((lengths == x.shape[-1]).all()):
        return x
    mask = length_mask(lengths, x.shape[-1]).to(x.dtype)
    return x * mask.view(mask.shape[0], *([1] * (x.ndim - 2)), mask.shape[1])
