"""`AutoCodecConfig` and `AutoCodecTokenizer`: load any registered codec by name, directory or hub id."""

from __future__ import annotations

import logging
import os

import torch

from .codecs.transformers_codecs.base import TransformersCodecTokenizer
from .configuration import CodecConfig
from .utils.errors import ConfigError
from .loading import PRETRAINED_DIR, load_model, read_model_type, resolve, transformers_codec_source
from .registry import CODECS, TRANSFORMERS_CODECS, get_codec_spec, register_with_transformers
from .tokenization import CodecTokenizer

logger = logging.getLogger(__name__)


class AutoCodecConfig:
    """Config of any registered codec."""

    @staticmethod
    def for_model(name: str, preset: str | None = None, **overrides) -> CodecConfig:
        """`AutoCodecConfig.for_model("language-codec", preset="tiny", num_quantizers=4)`."""
        spec = get_codec_spec(name)
        config = spec.config_class.preset(preset) if preset else spec.config_class()
        if overrides:
            fields = config.to_dict()
            unknown = [k for k in overrides if k not in fields]
            if unknown:
                raise ConfigError(f"unknown config field(s) {unknown} for {spec.model_type}")
            # Fields that default to None are derived from others in __post_init__ (e.g. quantizer_counts
            # from num_quantizers): let them be derived again unless the caller sets them.
            for key in fields:
                if key not in overrides and getattr(spec.config_class, key, 0) is None:
                    fields[key] = None
            fields.update(overrides)
            config = spec.config_class.from_dict(fields)
        return config

    @staticmethod
    def from_pretrained(name_or_path: str | os.PathLike) -> CodecConfig:
        where = resolve(name_or_path)
        if isinstance(where, str):
            builtin = PRETRAINED_DIR / where
            if (builtin / "config.json").is_file():
                where = builtin
            else:
                spec = CODECS[where]
                return spec.config_class.preset(spec.default_preset)
        return get_codec_spec(read_model_type(where)).config_class.from_pretrained(str(where))


class AutoCodecTokenizer:
    """Load any registered codec as its family's `CodecTokenizer` class.

    `from_pretrained(x)` accepts a local `save_pretrained` directory, a built-in name (`"language-codec"`:
    the weights shipped in the package; a built-in name without shipped weights raises unless
    `random_weights=True` asks for the untrained default preset) or a hub id (`owner/name`, downloaded
    with huggingface_hub). Loading also registers the codecs with transformers' `AutoConfig`/`AutoModel`.

    An audio codec that transformers ships (config `model_type` in `registry.TRANSFORMERS_CODECS`:
    encodec, dac, mimi, xcodec, ...), as a `save_pretrained` directory or a hub id such as
    `facebook/encodec_24khz` (loaded by transformers), comes back as a `TransformersCodecTokenizer`
    (`tokenizer.codecs.transformers_codecs`) with the same API.
    """

    @staticmethod
    def from_config(config: CodecConfig, seed: int | None = 0) -> CodecTokenizer:
        if config.model_type in TRANSFORMERS_CODECS:  # a transformers config (EncodecConfig, ...)
            return TransformersCodecTokenizer.from_config(config, seed=seed)
        register_with_transformers(config.model_type)
        return get_codec_spec(config.model_type).tokenizer_class.from_config(config, seed=seed)

    @staticmethod
    def from_pretrained(name_or_path: str | os.PathLike, device: str | torch.device | None = None,
                        random_weights: bool = False) -> CodecTokenizer:
        if transformers_codec_source(name_or_path) is not None:
            return TransformersCodecTokenizer.from_pretrained(name_or_path, device=device)
        model = load_model(name_or_path, random_weights=random_weights)
        spec = get_codec_spec(model.config.model_type)
        register_with_transformers(spec.model_type)
        if not isinstance(name_or_path, str) or spec.model_type != name_or_path.replace("-", "_"):
            logger.info("loaded %s weights from %s", spec.name, name_or_path)
        tok = spec.tokenizer_class(model)
        return tok.to(device) if device else tok
