"""The three training regimes of the Speech Mask Decoder (MobileSpeech demo figure; SoundStorm practice).

- `first_full` (P_{1-alpha}): level 1 fully masked, all higher levels masked; level 1 is predicted.
- `first_partial` (P_alpha): level 1 masked at a cosine ratio, higher levels masked; level 1 is predicted.
- `rank` (P_rank): a level q >= 2 is predicted: levels < q given, level q masked at a cosine ratio,
  levels > q masked.
Only the masked positions of the predicted level carry a loss. Shapes: codes LongTensor (K, F); masks bool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

REGIMES = ("first_full", "first_partial", "rank")


@dataclass
class Regime:
    """What one training example sees: `name`, the predicted `level` (0-based) and `mask` bool (F,) of the
    positions of that level that are hidden (and scored)."""

    name: str
    level: int
    mask: torch.Tensor


def cosine_mask(length: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Bool (length,): a uniformly random subset of ceil(cos(pi/2 u) * length) positions, u ~ U(0, 1),
    at least one (MaskGIT / SoundStorm's cosine schedule)."""
    u = float(torch.rand((), generator=generator))
    n = min(length, max(1, math.ceil(math.cos(math.pi / 2 * u) * length)))
    mask = torch.zeros(length, dtype=torch.bool)
    mask[torch.randperm(length, generator=generator)[:n]] = True
    return mask


def draw_regime(num_frames: int, num_levels: int, first_level_prob: float, full_mask_prob: float,
                generator: torch.Generator | None = None, level: int | None = None) -> Regime:
    """One example's regime. `level` (0-based) forces the predicted level (validation): level 0 is then
    `first_partial`, others `rank`. With one level (a single FSQ stage) only the first-level regimes exist."""
    if level is None:
        if num_levels == 1 or float(torch.rand((), generator=generator)) < first_level_prob:
            level = 0
        else:
            level = int(torch.randint(1, num_levels, (), generator=generator))
        if level == 0 and float(torch.rand((), generator=generator)) < full_mask_prob:
            return Regime("first_full", 0, torch.ones(num_frames, dtype=torch.bool))
    return Regime("first_partial" if level == 0 else "rank", level, cosine_mask(num_frames, generator))


def masked_inputs(codes: torch.Tensor, regime: Regime, mask_id: int) -> torch.Tensor:
    """The SMD's input tokens (K, F) of one example: levels below the predicted one as they are, the
    predicted level with `mask_id` where `regime.mask`, every higher level all `mask_id`."""
    out = codes.clone()
    out[regime.level, regime.mask.to(codes.device)] = mask_id
    out[regime.level + 1 :] = mask_id
    return out
