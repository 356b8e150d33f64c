"""`tokenize-corpus` on folder corpora whose inputs used to become a quietly wrong corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from data_prep.tokenize_corpus import main
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


def test_damaged_and_unusable_files_are_skipped_and_recorded(tmp_path, codec_dir):
    root = tmp_path / "trc"
    root.mkdir()
    text = "Goodbye. Thank you for trying."
    sf.write(root / "good.wav", clip(0.5), SR)
    noisy = clip(2.0) + 0.05 * np.random.default_rng(0).standard_normal(2 * SR).astype(np.float32)
    for name, fmt in (("a.wav", "WAV"), ("b.ogg", "OGG"), ("c.mp3", "MP3")):
        sf.write(root / name, noisy, SR, format=fmt)
    wav = bytearray((root / "a.wav").read_bytes())
    i = wav.index(b"data")
    wav[i + 4 : i + 8] = (2 * int.from_bytes(wav[i + 4 : i + 8], "little")).to_bytes(4, "little")
    (root / "a.wav").write_bytes(wav)  # header claims twice the frames the file holds
    ogg = bytearray((root / "b.ogg").read_bytes())
    ogg[len(ogg) // 2 : len(ogg) // 2 + 20] = bytes(20)  # 20 damaged bytes mid-stream
    (root / "b.ogg").write_bytes(ogg)
    mp3 = (root / "c.mp3").read_bytes()
    (root / "c.mp3").write_bytes(mp3[: int(len(mp3) * 0.6)])
    sf.write(root / "d.wav", np.array([0.1], np.float32), 48000)  # resamples to 0 samples
    for name in ("good", "a", "b", "c", "d"):
        (root / f"{name}.txt").write_text(text)
    out = tmp_path / "out"
    assert main(["folder", "--root", str(root), "--codec", str(codec_dir), "--out", str(out), "--no-phonemes",
                 "--num-workers", "0"]) == 0
    assert list(records(out)) == ["good"]
    skipped = {json.loads(line)["id"]: json.loads(line)["reason"] for line in (out / "skipped.jsonl").open()}
    assert sorted(skipped) == ["a", "b", "c", "d"]
    assert "a.wav is truncated: its data chunk declares" in skipped["a"]
    assert "b.ogg is damaged" in skipped["b"] or "b.ogg is truncated or damaged" in skipped["b"]
    assert "c.mp3 is truncated or damaged: its header declares 32000 frames" in skipped["c"]
    assert "d (resampled to 16000 Hz) is empty" in skipped["d"]
