"""Codec-agnostic VALL-E: FSQ tokens of Stable Codec, one stage (AR only) and residual stages (NAR 2..S),
trained, exported and synthesized with the post-hoc quantization the shards record."""

import json

import pytest
import torch

from data_prep.tokenize_corpus import main as tokenize_main
from data_prep.sample_corpus import SAMPLE_ROOT
from tokenizer import AutoCodecConfig, AutoCodecTokenizer
from tts.generation import GenerationConfig
from tts.synthesis import Request, Synthesizer
from tts.trainer import train

from test_tts_train import HAS_ESPEAK, quick_config

pytestmark = pytest.mark.skipif(not HAS_ESPEAK, reason="phoneme ids need espeak-ng")


@pytest.fixture(scope="module")
def fsq_codec(tmp_path_factory):
    config = AutoCodecConfig.for_model("stable-codec", preset="tiny", patch_size=320)  # 25 Hz frames
    return AutoCodecTokenizer.from_config(config).save_pretrained(tmp_path_factory.mktemp("fsq") / "codec")


@pytest.mark.parametrize("quantization, k, size", [("levels=6,stages=1", 1, 1296), (None, 3, 81)])
def test_fsq_tokens_train_and_synthesize(fsq_codec, tmp_path, quantization, k, size):
    tokens = tmp_path / "tokens"
    argv = ["libritts", "--codec", str(fsq_codec), "--root", str(SAMPLE_ROOT), "--out", str(tokens),
            "--num-workers", "0", "--shard-size", "10"]
    assert tokenize_main(argv + (["--quantization", quantization] if quantization else [])) == 0
    codec = json.loads((tokens / "manifest.json").read_text())["codec"]
    assert (codec["num_quantizers"], codec["codebook_size"]) == (k, size)
    result = train(quick_config(tokens, tmp_path / "run", steps=2, save_every=2, eval_every=2))
    rows = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    valid = [r for r in rows if any(key.startswith("valid/") for key in r)][-1]
    assert ("valid/nar/top10_q3" in valid) == (k == 3) and "valid/ar/top10" in valid
    synth = Synthesizer.from_pretrained(result.export_dir)  # the recorded FSQ setting is applied again
    assert synth.codec.num_quantizers == k and synth.codec.codebook_size == size
    assert (synth.model.nar is None) == (k == 1)
    utt = SAMPLE_ROOT / "sample" / "9000" / "1" / "9000_1_000002_000000"
    audio = synth.synthesize([Request((utt.parent / f"{utt.name}.normalized.txt").read_text(), f"{utt}.wav",
                                      mode="continuation")], GenerationConfig(do_sample=False,
                                                                              max_seconds_per_phoneme=0.02))[0]
    assert len(audio) >= 3 * 16000 - 640 and torch.isfinite(torch.as_tensor(audio)).all()
