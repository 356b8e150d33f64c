"""Length masks and right padding: the one place that turns per-item lengths of a padded batch into a mask,
and a list of items into a padded batch with its lengths.

Every padded batch in the toolkit (audio samples, latent frames, codes, attention keys) marks item b's
valid steps as positions [0, lengths[b]).
"""

from __future__ import annotations

from typing import Sequence

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


def pad_right(tensors: Sequence[torch.Tensor], value: float = 0, dim: int = -1, dtype: torch.dtype | None = None,
              min_length: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack tensors that differ only in axis `dim` into (B, ...) right-padded with `value` along that axis
    -> (batch, lengths LongTensor (B,)). dtype: of the batch (default: the first tensor's); min_length: the
    padded axis is at least this long (1 keeps an all-empty batch from having a 0-length axis). The batch is
    on the first tensor's device, the lengths on the CPU."""
    if not tensors:
        raise ValueError("pad_right: no tensors to pad")
    first = tensors[0]
    axis = dim % first.dim()
    lengths = torch.tensor([t.shape[axis] for t in tensors], dtype=torch.long)
    shape = list(first.shape)
    shape[axis] = max(int(lengths.max()), min_length)
    out = first.new_full((len(tensors), *shape), value, dtype=dtype or first.dtype)
    for i, t in enumerate(tensors):
        out[i].narrow(axis, 0, t.shape[axis]).copy_(t)
    return out, lengths
