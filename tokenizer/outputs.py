"""Typed results of the tokenizer API."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class CodecEncoding:
    """Result of encoding a batch.

    codes: LongTensor (B, K, F), padded with 0 past each item's length;
    lengths: LongTensor (B,) valid frames per item;
    sample_lengths: LongTensor (B,) input samples per item at the codec's rate (to trim decoded audio);
    sampling_rate, frame_rate: Hz.
    """

    codes: torch.Tensor
    lengths: torch.Tensor
    sample_lengths: torch.Tensor
    sampling_rate: int
    frame_rate: float

    @property
    def mask(self) -> torch.Tensor:
        """BoolTensor (B, F): True on valid frames."""
        return torch.arange(self.codes.shape[-1])[None, :] < self.lengths[:, None]

    def __len__(self) -> int:
        return self.codes.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        """Codes (K, F_i) of item i, trimmed to its length."""
        return self.codes[i, :, : int(self.lengths[i])]


@dataclass
class CodecDecoding:
    """Result of decoding: audio FloatTensor (B, 1, T) zero-padded; lengths LongTensor (B,) in samples."""

    audio: torch.Tensor
    lengths: torch.Tensor
    sampling_rate: int


@dataclass
class CodecModelOutput:
    """Training forward of a quantized codec: audio (B, 1, F * hop); codes (B, K, F); commit_loss scalar
    (0 for FSQ); frame_lengths (B,) | None; num_quantizers K used; stats (codebook usage, levels drawn...)."""

    audio: torch.Tensor
    codes: torch.Tensor
    commit_loss: torch.Tensor
    frame_lengths: torch.Tensor | None
    num_quantizers: int
    stats: dict = field(default_factory=dict)
