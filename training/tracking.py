"""What trainers log: flat hyper-parameters for TensorBoard's hparams and one JSON row per line."""

from __future__ import annotations

import json
from pathlib import Path


def flat_hparams(d: dict, prefix: str = "") -> dict:
    """{"optim": {"lr": 1e-4}} -> {"optim.lr": 1e-4}; values that are not scalars become strings."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat_hparams(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


def append_jsonl(path: str | Path, row: dict) -> None:
    """Append one row to `log.jsonl` (Python's json: NaN stays NaN, which `json.loads` reads back)."""
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
