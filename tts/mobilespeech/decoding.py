"""Level-by-level iterative masked decoding (MaskGIT within a level, SoundStorm across levels).

Level q (coarse to fine) starts fully masked and is decoded in `steps[q]` iterations. Iteration s of S:
the decoder's logits for level q; every masked position draws a token (softmax of logits / temperature,
or argmax when greedy); its confidence is the log-probability of that token plus Gumbel noise of scale
`choice_temperature * (1 - (s + 1) / S)` (annealed to 0, MaskGIT); the ceil(F cos(pi/2 (s + 1) / S))
least confident new tokens are masked again (cosine schedule), at least one token is kept per iteration.
The last iteration of a level is greedy (SoundStorm). `do_sample=False`: greedy throughout, no noise.

Randomness is per item: item i draws from its own generator seeded with `seed`, on the CPU, so an item
gets the same tokens alone or in any batch (items share the seed, not the noise values they see: those
depend on their own lengths and logits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import TTSError
from ..generation import GenerationConfig


@dataclass
class MaskDecodingConfig(GenerationConfig):
    """`GenerationConfig` (do_sample, temperature, seed, max_seconds_per_phoneme are used; top-k/top-p and
    the AR repetition guard are not) plus `speed` (speaking rate: durations are divided by it) and
    `steps_per_level` (None: the model config's)."""

    speed: float = 1.0
    steps_per_level: list | None = None

    def __post_init__(self):
        super().__post_init__()
        if not self.speed > 0 or not math.isfinite(self.speed):
            raise TTSError(f"speed={self.speed} must be > 0")
        if self.steps_per_level is not None and (not self.steps_per_level or min(self.steps_per_level) < 1):
            raise TTSError(f"steps_per_level={self.steps_per_level}: need >= 1 step per level")


def remask_count(num_frames: int, step: int, steps: int) -> int:
    """Positions still masked after iteration `step` (0-based) of `steps` on a level of `num_frames`."""
    return math.ceil(num_frames * math.cos(math.pi / 2 * (step + 1) / steps) - 1e-9)


@torch.no_grad()
def decode_levels(logits_fn: Callable[[torch.Tensor, int], torch.Tensor], lengths: list[int], num_levels: int,
                  steps: list[int], mask_id: int, cfg: GenerationConfig, choice_temperature: float,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Tokens (B, K, F_max) (padding = mask_id) of B items of `lengths` frames.

    logits_fn(tokens (B, K, F_max), level) -> logits (B, F_max, V) of that level given the tokens so far.
    """
    B, F_max = len(lengths), max(max(lengths), 1)
    tokens = torch.full((B, num_levels, F_max), mask_id, dtype=torch.long, device=device)
    gens = [torch.Generator().manual_seed(cfg.seed) for _ in range(B)]
    for level in range(num_levels):
        S = steps[level]
        masked = [torch.ones(n, dtype=torch.bool) for n in lengths]
        for s in range(S):
            logits = logits_fn(tokens, level).float().cpu()
            greedy = not cfg.do_sample or s == S - 1
            noise_scale = 0.0 if greedy else choice_temperature * (1 - (s + 1) / S)
            for i, n in enumerate(lengths):
                todo = masked[i].nonzero()[:, 0]
                if n == 0 or len(todo) == 0:
                    continue
                lg = logits[i, todo]
                logp = (lg / (1.0 if greedy else cfg.temperature)).log_softmax(-1)
                if greedy:
                    chosen = logp.argmax(-1)
                else:
                    chosen = torch.multinomial(logp.exp(), 1, generator=gens[i])[:, 0]
                confidence = logp.gather(-1, chosen[:, None])[:, 0]
                if noise_scale > 0:
                    u = torch.rand(len(todo), generator=gens[i]).clamp(1e-20, 1 - 1e-7)
                    confidence = confidence + noise_scale * -torch.log(-torch.log(u))
                keep_masked = min(remask_count(n, s, S), len(todo) - 1)
                order = torch.argsort(confidence, descending=True, stable=True)
                fix = todo[order[: len(todo) - keep_masked]]
                tokens[i, level, fix.to(device)] = chosen[order[: len(todo) - keep_masked]].to(device)
                masked[i][fix] = False
    return tokens
