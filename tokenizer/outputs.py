"""Typed results of the tokenizer API."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .utils.masking import length_mask
from .model_outputs import CodecModelOutput  # noqa: F401  (its old home; the type lives beside the model contract)


@dataclass
class CodecEncoding:
    """Result of encoding a batch.

    codes: LongTensor (B, K, F), padded with 0 past each item's length;
    lengths: LongTensor (B,) valid frames per item;
    mask: BoolTensor (B, F), True on valid frames (derived from `lengths`);
    sample_lengths: LongTensor (B,) input samples per item at the codec's rate (to trim decoded audio);
    sampling_rate, frame_rate: Hz.

    Two views, as transformers' `BatchEncoding` has: `len(enc)` and `enc[i]` are per item (`enc[i]` the
    codes (K, F_i) of item i, trimmed); `enc["codes"]`, `keys()`, `items()` and `dict(enc)` map the
    tensor fields `codes`, `lengths`, `mask`, `sample_lengths` (so `model(**enc)` works). The tensors
    are ordinary tensors (made under `no_grad`, not `inference_mode`): usable in autograd graphs and
    editable in place. `enc.to(device)` returns a new encoding with every tensor moved.
    """

    codes: torch.Tensor
    lengths: torch.Tensor
    sample_lengths: torch.Tensor
    sampling_rate: int
    frame_rate: float

    KEYS = ("codes", "lengths", "mask", "sample_lengths")

    @property
    def mask(self) -> torch.Tensor:
        """BoolTensor (B, F): True on valid frames."""
        return length_mask(self.lengths, self.codes.shape[-1])

    def to(self, device: str | torch.device) -> "CodecEncoding":
        """A new encoding with `codes`, `lengths` and `sample_lengths` on `device`."""
        return replace(self, codes=self.codes.to(device), lengths=self.lengths.to(device),
                       sample_lengths=self.sample_lengths.to(device))

    def keys(self) -> tuple[str, ...]:
        return self.KEYS

    def values(self) -> list[torch.Tensor]:
        return [self[k] for k in self.KEYS]

    def items(self) -> list[tuple[str, torch.Tensor]]:
        return [(k, self[k]) for k in self.KEYS]

    def __contains__(self, key: object) -> bool:
        return key in self.KEYS

    def __len__(self) -> int:
        return self.codes.shape[0]

    def __getitem__(self, key: int | str) -> torch.Tensor:
        """`enc["codes"]` etc.: a field (see `keys()`); `enc[i]`: codes (K, F_i) of item i, trimmed."""
        if isinstance(key, str):
            if key not in self.KEYS:
                raise KeyError(f"{key!r} (an encoding has {', '.join(self.KEYS)})")
            return getattr(self, key)
        return self.codes[key, :, : int(self.lengths[key])]


@dataclass
class CodecDecoding:
    """Result of decoding: audio FloatTensor (B, 1, T) zero-padded; lengths LongTensor (B,) in samples."""

    audio: torch.Tensor
    lengths: torch.Tensor
    sampling_rate: int
