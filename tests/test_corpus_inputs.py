"""`tokenize-corpus` on folder corpora whose inputs used to become a quietly wrong corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from data_prep.cli import main
from data_prep.dataset import TokenShardDataset
from tokenizer import AutoCodecConfig, AutoCodecTokenizer

SR = 16000


@pytest.fixture(scope="module")
def codec_dir(tmp_path_factory):
    tok = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("language-codec", preset="tiny"))
    return tok.save_pretrained(tmp_path_factory.mktemp("codec") / "tiny")


def clip(seconds: float, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def records(out) -> dict[str, dict]:
    return {s["id"]: s["record"] for s in TokenShardDataset(out)}


def test_manifest_duration_and_num_frames_columns_do_not_override(tmp_path, codec_dir):
    sf.write(tmp_path / "a.wav", clip(0.5), SR)
    sf.write(tmp_path / "b.wav", clip(0.25, 330), SR)
    (tmp_path / "m.csv").write_text("audio,text,duration,num_frames,speaker\na.wav,Hello.,99,10,s1\n"
                                    "b.wav,World.,n/a,x,s2\n")
    out = tmp_path / "out"
    assert main(["folder", "--root", str(tmp_path / "m.csv"), "--codec", str(codec_dir), "--out", str(out),
                 "--no-phonemes", "--num-workers", "0"]) == 0
    recs = records(out)
    assert recs["a"]["duration"] == pytest.approx(0.5) and recs["b"]["duration"] == pytest.approx(0.25)
    assert recs["a"]["num_samples"] == 8000 and recs["a"]["speaker"] == "s1"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["seconds"] == pytest.approx(0.75)
