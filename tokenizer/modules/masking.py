"""Moved to `tokenizer.utils.masking` (the toolkit's foundation); this name keeps old imports working."""

from ..utils.masking import length_mask, pad_right, zero_past_lengths  # noqa: F401
