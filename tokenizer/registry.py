"""The explicit codec registry: one table maps a `model_type` to its config, model and tokenizer classes.

User-facing names may use dashes (`language-codec`); the key, the folder under `codecs/` and the
config's `model_type` use underscores. Classes are named as `"module:Class"` strings and imported on
first use, so listing codecs or importing `tokenizer` loads no codec family (nor its entropy coder).
`register_with_transformers()` makes `transformers.AutoConfig` and `AutoModel` load our
`save_pretrained` directories; `AutoCodecTokenizer` calls it for each family it loads, and a user can call
it (for all families) before calling `transformers.AutoModel.from_pretrained(dir)` directly.

`TRANSFORMERS_CODECS` lists the audio codecs transformers itself ships (EnCodec, DAC, Mimi, ...), keyed by
their `model_type`; `tokenizer.codecs.transformers_codecs` wraps each in the same tokenizer API.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

from .utils.errors import ConfigError

logger = logging.getLogger(__name__)


def _load(target: str) -> type:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class CodecSpec:
    model_type: str
    config: str  # "module:Class", imported on first use
    model: str
    tokenizer: str
    description: str
    default_preset: str

    @property
    def name(self) -> str:
        return self.model_type.replace("_", "-")

    @property
    def config_class(self) -> type:
        return _load(self.config)

    @property
    def model_class(self) -> type:
        return _load(self.model)

    @property
    def tokenizer_class(self) -> type:
        return _load(self.tokenizer)


_C = "tokenizer.codecs."
CODECS: dict[str, CodecSpec] = {
    "language_codec": CodecSpec(
        "language_codec",
        _C + "language_codec.configuration_language_codec:LanguageCodecConfig",
        _C + "language_codec.modeling_language_codec:LanguageCodecModel",
        "tokenizer.tokenization:CodecTokenizer",
        "Language-Codec: SEANet encoder, masked-channel RVQ, Vocos iSTFT decoder", "paper",
    ),
    "stable_codec": CodecSpec(
        "stable_codec",
        _C + "stable_codec.configuration_stable_codec:StableCodecConfig",
        _C + "stable_codec.modeling_stable_codec:StableCodecModel",
        _C + "stable_codec.tokenization_stable_codec:StableCodecTokenizer",
        "Stable Codec (TAAE): patched transformer autoencoder, FSQ with post-hoc residual stages",
        "small",  # the untrained preset for random_weights=True: the paper preset has 953 M parameters
    ),
    "rate_aware": CodecSpec(
        "rate_aware",
        _C + "rate_aware.configuration_rate_aware:RateAwareConfig",
        _C + "rate_aware.modeling_rate_aware:RateAwareModel",
        _C + "rate_aware.tokenization_rate_aware:RateAwareTokenizer",
        "Rate-Aware Learned Speech Compression: CNN-RWKV transforms, channel-wise entropy model, "
        "range-coded bitstreams", "paper",
    ),
}


@dataclass(frozen=True)
class TransformersCodecSpec:
    """An audio codec that transformers ships, wrapped by `tokenizer.codecs.transformers_codecs`: its
    config's `model_type` (as transformers spells it), the adapter class ("module:Class", imported on
    first use) and `requires`, the extra package its transformers classes need ("" when none)."""

    model_type: str
    adapter: str
    description: str
    requires: str = ""

    @property
    def name(self) -> str:
        return self.model_type

    @property
    def adapter_class(self) -> type:
        return _load(self.adapter)


_T = "tokenizer.codecs.transformers_codecs.families:"
TRANSFORMERS_CODECS: dict[str, TransformersCodecSpec] = {s.model_type: s for s in (
    TransformersCodecSpec("encodec", _T + "EncodecAdapter", "EnCodec (RVQ; bandwidth -> num_quantizers)"),
    TransformersCodecSpec("dac", _T + "DacAdapter", "Descript Audio Codec (RVQ; n_quantizers)"),
    TransformersCodecSpec("mimi", _T + "MimiAdapter", "Mimi (split RVQ, semantic first; num_quantizers)"),
    TransformersCodecSpec("xcodec", _T + "XcodecAdapter", "X-Codec (HuBERT + acoustic RVQ; bandwidth)"),
    TransformersCodecSpec("higgs_audio_v2_tokenizer", _T + "HiggsAudioV2Adapter",
                          "Higgs Audio v2 tokenizer (X-Codec layout at 24 kHz; bandwidth)", requires="torchaudio"),
    TransformersCodecSpec("wavtokenizer", _T + "WavTokenizerAdapter", "WavTokenizer (one VQ codebook)"),
    TransformersCodecSpec("xcodec2", _T + "Xcodec2Adapter", "X-Codec2 (w2v-BERT + acoustic, one FSQ code)",
                          requires="torchaudio"),
    TransformersCodecSpec("neucodec", _T + "NeuCodecAdapter", "NeuCodec (X-Codec2 layout, 16 kHz in, 24 kHz out)",
                          requires="torchaudio"),
)}

# Audio tokenizers transformers ships whose latents are continuous: no discrete codes to wrap.
CONTINUOUS_TRANSFORMERS_CODECS: dict[str, str] = {
    "vibevoice_acoustic_tokenizer": "VibeVoice's acoustic tokenizer has continuous (VAE) latents, no discrete codes",
    "pocket_tts_audio_tokenizer": "Pocket TTS's audio tokenizer has continuous latents, no discrete codes",
}


def transformers_codec_spec(model_type: str, where: object = None) -> TransformersCodecSpec:
    """The wrapped transformers family of `model_type`; `ConfigError` (naming `where`) for a continuous
    audio tokenizer or for a model type that is no audio codec we know."""
    if model_type in TRANSFORMERS_CODECS:
        return TRANSFORMERS_CODECS[model_type]
    place = f" ({where})" if where is not None else ""
    if model_type in CONTINUOUS_TRANSFORMERS_CODECS:
        raise ConfigError(f"unsupported codec family {model_type!r}{place}: "
                          f"{CONTINUOUS_TRANSFORMERS_CODECS[model_type]}")
    raise ConfigError(f"model_type {model_type!r}{place} is not an audio codec this toolkit knows; known: "
                      f"{', '.join(list(CODECS) + list(TRANSFORMERS_CODECS))}")


def canonical_name(name: str) -> str:
    return str(name).strip().lower().replace("-", "_")


def get_codec_spec(name: str) -> CodecSpec:
    """The registry entry for a codec name (dashes or underscores); `ConfigError` lists the known ones."""
    key = canonical_name(name)
    if key not in CODECS:
        raise ConfigError(f"unknown codec {name!r}; known codecs: {', '.join(list_codecs())}")
    return CODECS[key]


def list_codecs(transformers: bool = False) -> list[str]:
    """User-facing names of the registered codec families (with `transformers=True`, also the wrapped
    transformers families, which load from a directory or hub id only)."""
    return [spec.name for spec in CODECS.values()] + (list(TRANSFORMERS_CODECS) if transformers else [])


_registered: set[str] = set()


def register_with_transformers(*names: str) -> None:
    """Register codecs (all, or the named ones) with `transformers.AutoConfig` / `AutoModel`, each once.
    A model type that another package already registered with other classes is logged, not replaced."""
    from transformers import AutoConfig, AutoModel

    for spec in (get_codec_spec(n) for n in names) if names else CODECS.values():
        if spec.model_type in _registered:
            continue
        config_class, model_class = spec.config_class, spec.model_class
        try:
            AutoConfig.register(spec.model_type, config_class)
            AutoModel.register(config_class, model_class)
        except ValueError as exc:  # the type is taken: ours if this module was reloaded, else a conflict
            if AutoConfig.for_model(spec.model_type).__class__ is not config_class:
                logger.warning("transformers already maps %r to another config class; AutoModel will not "
                               "load %s directories (%s)", spec.model_type, spec.name, exc)
        _registered.add(spec.model_type)
