"""Moved to `tokenizer.utils.masking` (the toolkit's foundation); this name keeps old imports working."""

import warnings

from ..utils.masking import length_mask, pad_right, zero_past_lengths  # noqa: F401

warnings.warn("tokenizer.modules.masking moved to tokenizer.utils.masking; import from there (or from tokenizer)",
              DeprecationWarning, stacklevel=2)
