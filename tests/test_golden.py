"""Golden checksums of the `tiny` preset of every codec: fixed seed, fixed input, the codes and decoded audio
must not change unless a commit says so (and why).

Regenerate (only when a change is *meant* to alter codes or audio):

    REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py

Codes are compared exactly (sha256 of the int64 codes, first frames in clear). Decoded audio is compared
as integers at a resolution of 1e-4 (its sha256, plus the whole rounded signal stored compressed): float
results differ in the last bits between thread counts, and a sample sitting on a rounding boundary may
move by one step, so the rounded signals must agree within one step everywhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from tokenizer import AutoCodecConfig, AutoCodecTokenizer, list_codecs

EXPECTED = Path(__file__).parent / "expected"
REGENERATE = os.environ.get("REGENERATE_GOLDEN") == "1"
AUDIO_STEP = 1e-4


def golden_input(sr: int) -> np.ndarray:
    """0.4 s: two tones and seeded noise (the same bytes on every machine)."""
    t = np.arange(int(0.4 * sr)) / sr
    noise = np.random.default_rng(1234).standard_normal(t.shape)
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1330 * t) + 0.05 * noise).astype(np.float32)


def fingerprint(name: str) -> dict:
    tok = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model(name, preset="tiny"), seed=0)
    x = golden_input(tok.sampling_rate)
    enc = tok(x, sampling_rate=tok.sampling_rate)
    codes = enc.codes.to(torch.int64).numpy()
    audio = tok.batch_decode(enc)[0]
    rounded = np.round(audio.astype(np.float64) / AUDIO_STEP).astype(np.int32)
    return {
        "codec": name,
        "codes_shape": list(codes.shape),
        "codes_sha256": hashlib.sha256(codes.tobytes()).hexdigest(),
        "codes_first_frames": codes[0, :, :6].tolist(),
        "audio_samples": int(rounded.size),
        "audio_step": AUDIO_STEP,
        "audio_sha256": hashlib.sha256(rounded.tobytes()).hexdigest(),
        "audio_first_samples": (rounded[:8] * AUDIO_STEP).round(6).tolist(),
        "audio_rounded_zlib_b64": base64.b64encode(zlib.compress(rounded.tobytes(), 9)).decode(),
    }


@pytest.mark.parametrize("name", list_codecs())
def test_tiny_preset_golden(name):
    path = EXPECTED / f"{name}_tiny.json"
    got = fingerprint(name)
    if REGENERATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, indent=1) + "\n")
        pytest.skip(f"regenerated {path}")
    assert path.is_file(), f"{path} missing: run REGENERATE_GOLDEN=1 pytest tests/test_golden.py"
    want = json.loads(path.read_text())
    assert got["codes_shape"] == want["codes_shape"]
    assert got["codes_first_frames"] == want["codes_first_frames"]
    assert got["codes_sha256"] == want["codes_sha256"], "codes changed"
    assert got["audio_samples"] == want["audio_samples"]
    if got["audio_sha256"] != want["audio_sha256"]:  # allow one rounding step (thread-count float noise)
        a = np.frombuffer(zlib.decompress(base64.b64decode(got["audio_rounded_zlib_b64"])), dtype=np.int32)
        b = np.frombuffer(zlib.decompress(base64.b64decode(want["audio_rounded_zlib_b64"])), dtype=np.int32)
        worst = int(np.abs(a.astype(np.int64) - b).max())
        assert worst <= 1, f"decoded audio changed: max difference {worst * AUDIO_STEP:g}"
