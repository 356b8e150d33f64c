"""Reading other projects' checkpoint files safely (shared by every codec's `convert` module)."""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import CodecError


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
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CodecError(
            f"cannot read {path} safely (weights_only): {exc}. Re-save its `state_dict` with torch.save "
            "or safetensors in a trusted environment and convert that file."
        ) from exc
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CodecError(f"{path} holds no tensor state_dict")
    return sd
