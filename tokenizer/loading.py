"""Where a codec comes from: a local `save_pretrained` directory, a built-in name, or a hub id.

Built-in names resolve to the weights shipped inside the package (`tokenizer/pretrained/<model_type>/`).
A built-in name without shipped weights is an error unless `random_weights=True` asks for the untrained
default preset explicitly (its tokens carry no meaning: never tokenize a corpus with it by accident).
Weights are read from safetensors only, as float32 whatever the stored dtype.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError

from .utils.cli import quiet_progress_bars  # noqa: F401  (re-exported: its former home)
from .utils.errors import CodecError, ConfigError
from .registry import CODECS, canonical_name, get_codec_spec, transformers_codec_spec

# Trained weights shipped inside the package: tokenizer/pretrained/<model_type>/{config.json, model.safetensors}.
PRETRAINED_DIR = Path(__file__).parent / "pretrained"


def read_model_type(directory: Path) -> str:
    path = directory / "config.json"
    try:
        model_type = json.loads(path.read_text()).get("model_type")
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise CodecError(f"cannot read codec config {path}: {exc}") from exc
    if not model_type:
        raise CodecError(f"{path} has no model_type")
    return model_type


def resolve(name_or_path: str | os.PathLike) -> Path | str:
    """A local directory, a built-in name (returned as its registry key), or a downloaded hub snapshot."""
    path = Path(name_or_path).expanduser()
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


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def _is_hub_id(name_or_path) -> bool:
    text = str(name_or_path)
    return (not Path(text).suffix and not text.startswith((".", "/", "~")) and text.count("/") == 1
            and canonical_name(text) not in CODECS)


def transformers_codec_source(name_or_path: str | os.PathLike):
    """`(TransformersCodecSpec, source)` when `name_or_path` is a transformers audio codec (a directory, or
    a hub id whose config.json transformers' hub client fetches), else None (one of our codecs, or not
    a directory/hub id at all: `resolve` reports it). Raises CodecError / ConfigError, naming it, for a
    model type that is no audio codec, a continuous or unsupported family, a directory without weights
    and a hub id that cannot be fetched (no hub access and no cached copy)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            return None
        model_type = read_model_type(path)
        if model_type in CODECS:
            return None
        spec = transformers_codec_spec(model_type, path)
        if not any((path / name).is_file() for name in WEIGHT_FILES):
            raise CodecError(f"{path} has no weights ({' / '.join(WEIGHT_FILES[::2])}): not a saved {model_type} codec")
        return spec, str(path)
    if not _is_hub_id(name_or_path):
        return None
    try:  # the user's machine may reach the hub (or hold a cached copy); this one cannot
        from huggingface_hub import hf_hub_download

        config_path = hf_hub_download(str(name_or_path), "config.json")
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CodecError(f"cannot fetch codec {str(name_or_path)!r} from the hub (no hub access and no local "
                         f"copy?): {first}") from exc
    model_type = read_model_type(Path(config_path).parent)
    if model_type in CODECS:
        return None
    return transformers_codec_spec(model_type, name_or_path), str(name_or_path)


def builtin_dir(key: str) -> Path | None:
    """The shipped weights of a built-in codec, or None when none ship with this install."""
    directory = PRETRAINED_DIR / key
    return directory if (directory / "model.safetensors").is_file() else None


def untrained_model(config, seed: int | None = 0) -> torch.nn.Module:
    """A codec model with random weights from `config`, seeded so that runs are reproducible."""
    model_class = get_codec_spec(config.model_type).model_class
    if seed is None:
        return model_class(config)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return model_class(config)


def load_model(name_or_path: str | os.PathLike, random_weights: bool = False) -> torch.nn.Module:
    """The codec model that `name_or_path` names (see the module docstring), in eval mode, float32."""
    where = resolve(name_or_path)
    if isinstance(where, str):
        spec, shipped = CODECS[where], builtin_dir(where)
        if shipped is None:
            if not random_weights:
                raise ConfigError(
                    f"no trained {spec.name} weights ship with this install: pass a save_pretrained directory "
                    f"or hub id, or ask for the untrained {spec.default_preset!r} preset explicitly "
                    f"(random_weights=True, or --random-weights on the command line)")
            return untrained_model(spec.config_class.preset(spec.default_preset), seed=0).eval()
        where = shipped
    model_type = read_model_type(where)
    if model_type not in CODECS:
        transformers_codec_spec(model_type, where)  # names what it is: a transformers codec, or no codec at all
    spec = get_codec_spec(model_type)
    weights = where / "model.safetensors"
    if not weights.is_file():
        raise CodecError(f"{where} has no model.safetensors (a codec directory holds config.json + model.safetensors)")
    try:
        with quiet_progress_bars():
            model = spec.model_class.from_pretrained(str(where), dtype=torch.float32)
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CodecError(f"cannot load codec weights {weights}: {first}") from exc
    return model.eval()
