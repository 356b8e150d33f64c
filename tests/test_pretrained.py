"""The Language-Codec checkpoint shipped inside the package: loads offline and reconstructs held-out speech."""

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tokenizer import AutoCodecTokenizer, load_audio
from tokenizer.audio import resample
from tokenizer.auto import PRETRAINED_DIR
from tokenizer.identity import tokens_mismatch

CLIP = Path(__file__).parent / "data" / "8630-305212-0000.flac"  # speaker 8630: held out from training
# The codes of CLIP from the first shipped checkpoint (weights digest below): the retrained decoders since keep
# its encoder and quantizer, so the tokens must not change by a single code.
V1_CODES = CLIP.with_name("8630-305212-0000.language_codec_v1_codes.npy")
V1_WEIGHTS_DIGEST = "de31b9b2e16c9447"
# Measured on this clip when the checkpoint was exported: STOI 0.831 / 0.837 / 0.839 at 3 / 4 / 8 quantizers
# (see tokenizer/pretrained/language_codec/README.md); the thresholds sit 0.02 below the measurements.
STOI_MIN = {3: 0.810, 4: 0.816, 8: 0.818}


@pytest.fixture(scope="module")
def tok():
    os.environ["HF_HUB_OFFLINE"] = "1"
    return AutoCodecTokenizer.from_pretrained("language-codec")


def test_shipped_checkpoint_is_small_and_loads_offline(tok, caplog):
    files = {p.name: p.stat().st_size for p in (PRETRAINED_DIR / "language_codec").iterdir()}
    assert {"config.json", "model.safetensors", "README.md"} <= set(files)
    assert files["model.safetensors"] < 20 * 2**20
    assert tok.sampling_rate == 16000 and tok.frame_rate == 50 and tok.num_quantizers == 8
    assert next(tok.model.parameters()).dtype == torch.float32
    with caplog.at_level("WARNING"):
        AutoCodecTokenizer.from_pretrained("language-codec")
    assert "untrained" not in caplog.text


@pytest.mark.parametrize("k", [3, 4, 8])
def test_shipped_checkpoint_reconstructs_held_out_speech(tok, k):
    from pystoi import stoi

    audio, sr = load_audio(CLIP)
    x = resample(audio[0], sr, tok.sampling_rate)
    enc = tok(x, sampling_rate=tok.sampling_rate, num_quantizers=k)
    y = tok.batch_decode(enc)[0]
    assert y.shape == x.shape and np.isfinite(y).all()
    score = stoi(x, y, tok.sampling_rate, extended=False)
    assert score >= STOI_MIN[k], f"STOI {score:.3f} at {k} quantizers"
    assert tok.bitrate_for(k) == 50 * k * math.log2(1024)


def test_shipped_checkpoint_keeps_the_first_checkpoints_tokens(tok):
    audio, sr = load_audio(CLIP)
    x = resample(audio[0], sr, tok.sampling_rate)
    codes = tok(x, sampling_rate=tok.sampling_rate, num_quantizers=8)["codes"][0].numpy()
    expected = np.load(V1_CODES)
    assert codes.shape == expected.shape
    assert (codes == expected).all(), f"{(codes != expected).sum()} of {codes.size} codes changed"
    # ... and says so, so shards and TTS models recorded with the first checkpoint are accepted with this one
    assert V1_WEIGHTS_DIGEST in (tok.config.same_tokens_as or [])
    first = {**tok.identity(), "weights_digest": V1_WEIGHTS_DIGEST, "tokens_digest": None, "same_tokens_as": None}
    assert tokens_mismatch(first, tok.identity()) is None
