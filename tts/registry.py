"""The explicit TTS model registry: `model_type` -> (config class, model class, training presets), imported
on first use. `load_model(export_dir)` opens any registered model's `save_pretrained` directory."""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import torch

from tokenizer.utils.cli import quiet_progress_bars

from .errors import TTSError

# model_type -> module exposing CONFIG_CLASS, MODEL_CLASS and TRAIN_PRESETS
MODELS = {"valle": "tts.valle", "mobilespeech": "tts.mobilespeech"}


def get_model_module(name: str):
    key = name.replace("-", "_").lower()
    if key not in MODELS:
        raise TTSError(f"unknown TTS model {name!r}; known: {', '.join(MODELS)}")
    return importlib.import_module(MODELS[key])


def load_model(export_dir: str | Path):
    """The TTS model saved in `export_dir` (config.json + model.safetensors), in eval mode, float32."""
    export_dir = Path(export_dir)
    path = export_dir / "config.json"
    try:
        model_type = json.loads(path.read_text()).get("model_type")
    except FileNotFoundError:
        raise TTSError(f"{export_dir} is not a TTS model export (no config.json)") from None
    except (OSError, ValueError, AttributeError) as exc:
        raise TTSError(f"cannot read {path}: {exc}") from None
    module = get_model_module(str(model_type))
    if not (export_dir / "model.safetensors").is_file():
        raise TTSError(f"{export_dir} has no model.safetensors")
    from safetensors import SafetensorError  # a file cut short by a kill (derives from Exception only)

    try:
        with quiet_progress_bars():
            model = module.MODEL_CLASS.from_pretrained(str(export_dir), dtype=torch.float32)
    except (OSError, RuntimeError, ValueError, SafetensorError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TTSError(f"cannot load TTS model {export_dir}: {first}") from None
    return model.eval()


def export_digest(export_dir: str | Path) -> str:
    """Digest (16 hex digits) of a TTS export's `config.json` and `model.safetensors` bytes: which model made
    an output (recorded beside it by `synthesize`, read by `evaluate-tts`) or started a run (`init_from`)."""
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        with open(Path(export_dir) / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]
