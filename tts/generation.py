"""Decoding settings and the next-token sampler shared by the TTS decoders.

Default: greedy (`do_sample=False`). Measured with benchmarks/tts_end_to_end.py (tiny VALL-E trained 15
minutes on the 20 sample utterances, continuation from 1.5 s, Whisper WER; codec resynthesis 5.4%):
greedy 5.0% (9.1% in a rerun: same audio, Whisper's transcript of one looping sentence differed), nucleus
sampling with repetition-aware sampling at top-p 0.8 9.5% (seeds 10.0 / 10.4 / 8.3).
On an earlier checkpoint of the same recipe (greedy 7.9%), the top-p sweep with RAS over three seeds gave
11.6% at 0.8, 9.5% at 0.5, 14.4% at 0.3, 11.5% at ~0, single seeds spreading over 7.1-28.2%. Each sampled
token off the learned path puts the AR in a context it never saw (exposure bias), and one such step can
send a sentence into another one or into babble; greedy follows what the model learned. MobileSpeech
(`MaskDecodingConfig`): greedy 11.2%, sampled 11.6 / 12.4 / 9.1%.

`do_sample=True` (`synthesize --sample`) is the papers' decoding (tts-anchors.md §2.7), for models trained
on enough speech that their distributions are worth sampling (variety, no greedy loops): temperature,
top-k, nucleus sampling with VALL-E 2's repetition-aware sampling (RAS: when the sampled token already
fills more than `ras_threshold` of the last `ras_window` tokens, draw again from the full distribution).
Either way EOS is allowed after `min_frames` and generation is capped at `max_seconds_per_phoneme` x the
target's phoneme count (lifeiteng caps at 16 tokens per phoneme at 75 Hz = 0.21 s; ESPnet at a ratio),
which also ends any greedy loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import TTSError


@dataclass
class GenerationConfig:
    """How an AR decoder picks tokens. `temperature` > 0; `top_k` 0 = off; `top_p` 1.0 = off."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.8
    ras_window: int = 10
    ras_threshold: float = 0.1
    min_frames: int = 1
    max_seconds_per_phoneme: float = 0.4
    use_cache: bool = True
    static_cache: bool = True  # VALL-E: the preallocated cache (tts.valle.decoding); False: transformers' DynamicCache
    seed: int = 0

    def __post_init__(self):
        # written as "not good" so that NaN, which fails every comparison, is refused too
        if (not 0 < self.temperature < math.inf or not 0 < self.top_p <= 1 or not self.top_k >= 0
                or not self.min_frames >= 0):
            raise TTSError(f"bad sampling settings: temperature={self.temperature} (> 0), top_p={self.top_p} "
                           f"(0..1], top_k={self.top_k} (>= 0), min_frames={self.min_frames} (>= 0)")
        if not 0 < self.max_seconds_per_phoneme < math.inf:
            raise TTSError(f"max_seconds_per_phoneme={self.max_seconds_per_phoneme} must be a number > 0")

    def max_frames(self, num_phonemes: int, frame_rate: float) -> int:
        """Frames the decoder may emit for a text of `num_phonemes` phonemes before it is stopped (this cap
        wins over `min_frames`)."""
        return max(1, math.ceil(num_phonemes * self.max_seconds_per_phoneme * frame_rate - 1e-6))


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """(B, V) logits with everything outside the top-k and the top-p nucleus set to -inf."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) > top_p  # keep the token that crosses top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def sample_next(logits: torch.Tensor, cfg: GenerationConfig, history: list[list[int]],
                generator: torch.Generator | list[torch.Generator] | None) -> torch.Tensor:
    """One token per row of `logits` (B, V): greedy, or sampled with temperature / top-k / top-p and RAS.

    history: tokens emitted so far per row (for RAS). generator: one per row (each row's draws then depend on
    that row alone, so an item samples the same tokens whatever else is in its batch), or one shared by the
    batch. Returns LongTensor (B,).
    """
    logits = logits.float()
    if not cfg.do_sample:
        return logits.argmax(-1)
    rows = generator if isinstance(generator, (list, tuple)) else [generator] * logits.shape[0]
    logits = logits / cfg.temperature
    probs = filter_logits(logits, cfg.top_k, cfg.top_p).softmax(-1)
    tokens = torch.stack([torch.multinomial(probs[b], 1, generator=g)[0] for b, g in enumerate(rows)])
    if cfg.ras_window > 0:
        full = logits.softmax(-1)
        for b, past in enumerate(history):
            window = past[-cfg.ras_window:]
            if window and sum(t == int(tokens[b]) for t in window) / cfg.ras_window > cfg.ras_threshold:
                tokens[b] = torch.multinomial(full[b], 1, generator=rows[b])[0]
    return tokens
