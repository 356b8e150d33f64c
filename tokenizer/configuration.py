"""Base configuration every codec config extends (a transformers `PreTrainedConfig`).

Only architecture fields are stored; everything derived (hop length, frame rate, bitrate, tokens per
second) is a property computed from them, never stored twice. A codec whose `num_quantizers` or
`codebook_size` follows from its other fields makes it a property with `derived_field`, and names it in
`DERIVED`: `to_dict` (hence `config.json` and `config_hash`) still records the value, and a stored value
(a config.json, a stale `to_dict()`) is accepted and ignored on load.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import ClassVar

from transformers import PreTrainedConfig

from .utils.errors import ConfigError

# Keys transformers adds that say nothing about the codec itself.
_NOT_ARCHITECTURE = {
    "transformers_version", "_name_or_path", "architectures", "dtype", "torch_dtype", "output_hidden_states",
    "output_attentions", "return_dict", "chunk_size_feed_forward", "is_encoder_decoder", "id2label",
    "label2id", "problem_type", "_commit_hash", "use_cache",
    "same_tokens_as",  # lineage of a retrained decoder (tokenizer.identity), not architecture
}


class RateProperties:
    """What follows from `sampling_rate`, `hop_length`, `num_quantizers` and `codebook_size`: frame rate,
    bits and tokens per second, and the config hash over `to_dict()`'s architecture fields. Shared by our
    `CodecConfig` and the view of a wrapped transformers codec (`transformers_codecs.base`)."""

    @property
    def frame_rate(self) -> float:
        """Frames per second (Hz)."""
        return self.sampling_rate / self.hop_length

    def codebook_sizes(self, num_quantizers: int | None = None) -> list[int]:
        """Codebook size of each of the first `num_quantizers` stages."""
        k = self.num_quantizers if num_quantizers is None else num_quantizers
        return [self.codebook_size] * k

    def bits_per_frame(self, num_quantizers: int | None = None) -> int:
        return sum(math.ceil(math.log2(n)) for n in self.codebook_sizes(num_quantizers))

    def bitrate_for(self, num_quantizers: int | None = None) -> float:
        """Nominal bits per second with `num_quantizers` stages: frame_rate x sum(ceil(log2 size_k))."""
        return self.frame_rate * self.bits_per_frame(num_quantizers)

    @property
    def bitrate(self) -> float:
        """Nominal bits per second at the default `num_quantizers`."""
        return self.bitrate_for()

    @property
    def tokens_per_second(self) -> float:
        return self.frame_rate * self.num_quantizers

    def architecture_dict(self) -> dict:
        return {k: v for k, v in self.to_dict().items() if k not in _NOT_ARCHITECTURE}

    def config_hash(self) -> str:
        """Short sha256 of the architecture fields: two tokenizers with equal hashes make the same tokens
        from the same weights' family (recorded in shard manifests)."""
        blob = json.dumps(self.architecture_dict(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class CodecConfig(RateProperties, PreTrainedConfig):
    """Fields every codec has: `sampling_rate` (Hz), `num_quantizers` (codes per frame used by default),
    `codebook_size` (entries per codebook). Subclasses define `hop_length` and may override
    `codebook_sizes` when stages differ."""

    model_type = "codec"
    sampling_rate: int = 24000
    num_quantizers: int = 8
    codebook_size: int = 1024

    PRESETS: ClassVar[tuple[str, ...]] = ()
    DERIVED: ClassVar[tuple[str, ...]] = ()

    @property
    def hop_length(self) -> int:
        """Samples per frame."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        out = super().to_dict()
        for name in self.DERIVED:
            out[name] = getattr(self, name)
        return out

    @classmethod
    def preset(cls, name: str) -> "CodecConfig":
        """Config of a named preset (`paper`, `tiny`, ...): each is a classmethod of the same name."""
        key = name.replace("-", "_")
        if key not in cls.PRESETS:
            raise ConfigError(f"unknown preset {name!r} for {cls.model_type}; known: {', '.join(cls.PRESETS)}")
        return getattr(cls, key)()


def derived_field(compute) -> property:
    """A config value computed by `compute(config)` that the base contract declares as a field: reading
    computes it; setting it (transformers' `__init__` with the inherited default, or a value from a
    saved config.json) is accepted and ignored, since it follows from the other fields."""
    return property(compute, lambda self, value: None, doc=compute.__doc__)
