"""Typed results of the tokenizer API."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .model_outputs import CodecModelOutput  # noqa: F401  (its old home; the type lives beside the model contract)


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
