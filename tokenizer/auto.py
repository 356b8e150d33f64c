"""`AutoCodecConfig` and `AutoCodecTokenizer`: load any registered codec by name, directory or hub id."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from .configuration import CodecConfig
from .errors import CodecError, ConfigError
from .registry import CODECS, canonical_name, get_codec_spec
from .tokenization import CodecTokenizer

logger = logging.getLogger(__name__)

# Trained weights shipped inside the package: tokenizer/pretrained/<model_type>/{config.json, model.safetensors}.
PRETRAINED_DIR = Path(__file__).parent / "pretrained"


def _read_model_type(directory: Path) -> str:
    path = directory / "config.json"
    try:
        model_type = json.loads(path.read_text()).get("model_type")
    except (OSError, json.JSONDecodeError) as exc:
        raise CodecError(f"cannot read codec config {path}: {exc}") from exc
    if not model_type:
        raise CodecError(f"{path} has no model_type")
    return model_type


def _resolve(name_or_path: str | os.PathLike) -> Path | str:
    """A local directory, a built-in name (returned as its registry key), or a downloaded hub snapshot."""
    path = Path(name_or_path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CodecError(f"{path} is a directory without config.json: not a saved codec")
        return path
    key = canonical_name(name_or_path)
    if key in CODECS:
        return key
    if path.suffix or str(name_or_path).startswith((".", "/", "~")) or "/" not in str(name_or_path):
        raise ConfigError(
            f"unknown codec {str(name_or_path)!r}: not a directory with config.json, not a built-in name "
            f"({', '.join(s.name for s in CODECS.values())}) and not a hub id (owner/name)"
        )
    try:  # a hub id: the user's machine may reach the hub; this one cannot
        from huggingface_hub import snapshot_download

        local = snapshot_download(str(name_or_path), allow_patterns=["config.json", "*.safetensors", "*.md"])
    except Exception as exc:
        raise CodecError(f"cannot download codec {str(name_or_path)!r} from the hub: {exc}") from exc
    return Path(local)


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
        where = _resolve(name_or_path)
        if isinstance(where, str):
            builtin = PRETRAINED_DIR / where
            if (builtin / "config.json").is_file():
                where = builtin
            else:
                spec = CODECS[where]
                return spec.config_class.preset(spec.default_preset)
        return get_codec_spec(_read_model_type(where)).config_class.from_pretrained(str(where))


class AutoCodecTokenizer:
    """Load any registered codec as a `CodecTokenizer`.

    `from_pretrained(x)` accepts a local `save_pretrained` directory, a built-in name
    (`"language-codec"`: the weights shipped in the package, or an untrained default preset with a
    warning when none are shipped) or a hub id (`owner/name`, downloaded with huggingface_hub).
    """

    @staticmethod
    def from_config(config: CodecConfig, seed: int | None = 0) -> CodecTokenizer:
        return CodecTokenizer.from_config(config, seed=seed)

    @staticmethod
    def from_pretrained(name_or_path: str | os.PathLike, device: str | torch.device | None = None) -> CodecTokenizer:
        where = _resolve(name_or_path)
        if isinstance(where, str):
            spec = CODECS[where]
            builtin = PRETRAINED_DIR / where
            if not (builtin / "model.safetensors").is_file():
                logger.warning(
                    "no trained %s weights are shipped with this install: using the untrained %r preset "
                    "(seeded random weights); its tokens carry no meaning", spec.name, spec.default_preset,
                )
                tok = CodecTokenizer.from_config(spec.config_class.preset(spec.default_preset), seed=0)
                return tok.to(device) if device else tok
            where = builtin
        spec = get_codec_spec(_read_model_type(where))
        # float32 whatever the stored dtype (the shipped checkpoint is stored in float16 to stay small)
        model = spec.model_class.from_pretrained(str(where), dtype=torch.float32)
        logger.info("loaded %s weights from %s", spec.name, where)
        tok = spec.tokenizer_class(model)
        return tok.to(device) if device else tok
