"""The explicit codec registry: one table maps a `model_type` to its config, model and tokenizer classes.

User-facing names may use dashes (`language-codec`); the key, the folder under `codecs/` and the
config's `model_type` use underscores. `register_with_transformers()` makes `transformers.AutoConfig`
and `AutoModel` load our `save_pretrained` directories.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import AutoConfig, AutoModel

from .codecs.language_codec import LanguageCodecConfig, LanguageCodecModel
from .codecs.rate_aware import RateAwareConfig, RateAwareModel, RateAwareTokenizer
from .codecs.stable_codec import StableCodecConfig, StableCodecModel, StableCodecTokenizer
from .errors import ConfigError
from .tokenization import CodecTokenizer


@dataclass(frozen=True)
class CodecSpec:
    model_type: str
    config_class: type
    model_class: type
    tokenizer_class: type
    description: str
    default_preset: str

    @property
    def name(self) -> str:
        return self.model_type.replace("_", "-")


CODECS: dict[str, CodecSpec] = {
    "language_codec": CodecSpec(
        "language_codec", LanguageCodecConfig, LanguageCodecModel, CodecTokenizer,
        "Language-Codec: SEANet encoder, masked-channel RVQ, Vocos iSTFT decoder", "paper",
    ),
    "stable_codec": CodecSpec(
        "stable_codec", StableCodecConfig, StableCodecModel, StableCodecTokenizer,
        "Stable Codec (TAAE): patched transformer autoencoder, FSQ with post-hoc residual stages",
        "small",  # the untrained fallback: the paper preset has 953 M parameters
    ),
    "rate_aware": CodecSpec("rate_aware", RateAwareConfig, RateAwareModel, RateAwareTokenizer, "Rate-Aware Learned Speech Compression: CNN-RWKV transforms, channel-wise entropy model, range-coded bitstreams", "paper"),
}


def canonical_name(name: str) -> str:
    return str(name).strip().lower().replace("-", "_")


def get_codec_spec(name: str) -> CodecSpec:
    """The registry entry for a codec name (dashes or underscores); `ConfigError` lists the known ones."""
    key = canonical_name(name)
    if key not in CODECS:
        raise ConfigError(f"unknown codec {name!r}; known codecs: {', '.join(list_codecs())}")
    return CODECS[key]


def list_codecs() -> list[str]:
    """User-facing names of the registered codec families."""
    return [spec.name for spec in CODECS.values()]


def register_with_transformers() -> None:
    for spec in CODECS.values():
        try:
            AutoConfig.register(spec.model_type, spec.config_class)
            AutoModel.register(spec.config_class, spec.model_class)
        except ValueError:  # already registered (module re-imported)
            pass
