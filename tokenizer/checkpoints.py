"""Reading other projects' checkpoint files safely (shared by every codec's `convert` module)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from .utils.errors import CodecError

logger = logging.getLogger(__name__)

# Legacy `torch.nn.utils.weight_norm` tensor names (official checkpoints) -> ours, made with
# `torch.nn.utils.parametrizations.weight_norm`.
WEIGHT_NORM_KEYS = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1",
                    "bias": "bias"}


def copy_weight_norm(sd: dict[str, torch.Tensor], src: str, dst: str, out: dict[str, torch.Tensor]) -> list[str]:
    """Copy the legacy weight-norm conv at `src` (`{src}weight_g`, `weight_v`, `bias`) into `out` under our
    names (`{dst}.parametrizations.weight.original0`, ...). Returns the source keys it found."""
    found = [src + suffix for suffix in WEIGHT_NORM_KEYS if src + suffix in sd]
    for key in found:
        out[f"{dst}.{WEIGHT_NORM_KEYS[key[len(src):]]}"] = sd[key]
    return found


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file (a Lightning `state_dict` is unwrapped), never unpickling objects.

    `.safetensors` files are read directly; `.ckpt` / `.pt` / `.bin` files with
    `torch.load(weights_only=True)` (tensors and plain containers only). Raises `CodecError` naming the
    file when it is missing, unsafe to read or holds no tensor state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CodecError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise CodecError(f"cannot read {path} as safetensors: {exc}") from exc
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CodecError(
            f"cannot read {path} with torch.load(weights_only=True) ({_reason(exc)}): not a PyTorch checkpoint, or "
            "one that pickles objects; re-save its `state_dict` with torch.save or safetensors in a trusted "
            "environment and convert that file"
        ) from exc
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CodecError(f"{path} holds no tensor state_dict")
    return sd


def _reason(exc: Exception) -> str:
    """One line out of torch.load's multi-paragraph message: the unpickler's own complaint when it has one."""
    text = " ".join(str(exc).split())
    _, found, detail = text.partition("WeightsUnpickler error:")
    if found:
        text = detail.split(" Check the documentation")[0].strip()
    return text[:200] or type(exc).__name__


def save_converted(model, state_dict: dict[str, torch.Tensor], output_dir: str | Path, source: str | Path) -> Path:
    """Load a converted state dict into `model` after checking it covers every tensor with the right
    shape, then `save_pretrained` it (config.json + model.safetensors) to `output_dir`."""
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(state_dict)), sorted(set(state_dict) - set(expected))
    if missing or extra:
        raise CodecError(f"checkpoint {source} does not fit the architecture: missing {missing[:8]}, extra {extra[:8]}")
    for k, v in state_dict.items():
        if v.shape != expected[k].shape:
            raise CodecError(f"shape mismatch for {k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}")
    model.load_state_dict(state_dict, strict=True)
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise CodecError(f"output directory {out} is an existing file")
    model.save_pretrained(out, safe_serialization=True)
    logger.info("converted %d tensors from %s into %s", len(state_dict), source, out)
    return out
