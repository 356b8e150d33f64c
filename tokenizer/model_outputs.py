"""The one training-output type every codec model's `forward` returns (the codec trainer's contract)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class CodecModelOutput:
    """Training forward of a codec model.

    audio: (B, 1, F * hop) reconstruction; commit_loss: scalar (0 without codebooks, e.g. FSQ or entropy
    coding); frame_lengths: (B,) | None valid frames per item.
    Discrete codecs: codes (B, K, F) and num_quantizers K used.
    Entropy-coded codecs: rate_loss, scalar estimated bits over the batch / input audio samples (bits per
    sample; x sampling_rate = bits per second), which the trainer's rate-distortion objective needs;
    bits (B,) estimated bits per item.
    stats: floats for logging (codebook usage, levels drawn, bits per second...).
    """

    audio: torch.Tensor
    commit_loss: torch.Tensor
    frame_lengths: torch.Tensor | None = None
    codes: torch.Tensor | None = None
    num_quantizers: int | None = None
    rate_loss: torch.Tensor | None = None
    bits: torch.Tensor | None = None
    stats: dict[str, float] = field(default_factory=dict)
