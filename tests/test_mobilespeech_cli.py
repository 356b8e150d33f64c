"""MobileSpeech through the shared trainer and CLIs, in-process on the sample corpus (tiny codec, tiny
model): `train-tts mobilespeech` (logs, validation per level, samples, export), exact resume, `synthesize`
in both modes and with a manifest, batched == one at a time, --speed, bad inputs as one line."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from tokenizer import AutoCodecTokenizer
from tts.cli import train_main
from tts.generation import GenerationConfig
from tts.mobilespeech import MaskDecodingConfig, MobileSpeechModel
from tts.registry import load_model
from tts.synthesis import Request, Synthesizer
from tts.trainer import load_train_config, train

from test_tts_cli import one_error_line, synth, text, wav
from test_tts_train import HAS_ESPEAK, tokenize_sample

pytestmark = pytest.mark.skipif(not HAS_ESPEAK, reason="phoneme ids need espeak-ng")

TINY = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64, "encoder_layers": 1,
        "prompt_encoder_layers": 1, "decoder_layers": 1, "duration_layers": 1, "aligner_dim": 16,
        "steps_per_level": [3, 1]}
FLAGS = [f"--overrides.{k}={json.dumps(v)}" for k, v in TINY.items()] + [
    "--data.max_tokens=1200", "--log_every=2", "--eval_every=4", "--save_every=4", "--sample_every=4",
    "--samples.num=1", "--data.valid_utterances=2"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("mscli")
    codec_dir, tokens = tokenize_sample(root)
    out = root / "run"
    assert train_main(["mobilespeech", "--data", str(tokens), "--preset", "tiny", "--out", str(out), "--steps", "4",
                       *FLAGS]) == 0
    return {"root": root, "codec": codec_dir, "tokens": tokens, "run": out, "export": out / "final"}


def test_train_tts_mobilespeech_writes_export_logs_and_samples(run):
    export = run["export"]
    config = json.loads((export / "config.json").read_text())
    assert config["model_type"] == "mobilespeech" and config["num_quantizers"] == 4 and config["codebook_size"] == 64
    assert config["decoder_layers"] == 1 and config["steps_per_level"] == [3, 1]
    manifest = json.loads((run["tokens"] / "manifest.json").read_text())
    for key in ("name", "config_hash", "weights_digest"):
        assert config["codec"][key] == manifest["codec"][key]
    rows = [json.loads(x) for x in (run["run"] / "log.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [2, 4]
    assert all(k in train_rows[-1] for k in ("smd/loss", "duration/loss", "align/loss", "smd/acc"))
    assert any(all(f"valid/smd/acc_q{q}" in r for q in (1, 2, 3, 4)) for r in rows)
    assert list((run["run"] / "samples" / "step-4").glob("*.wav"))
    assert (run["run"] / "state" / "step-4").is_dir()
    # the aligner reads frames through the codec's code vectors, kept (scaled) in the export
    assert config["aligner_features"] == "codec"
    table = AutoCodecTokenizer.from_pretrained(str(run["codec"])).code_vectors(4)
    assert config["aligner_feature_dim"] == table.shape[-1]
    stored = load_model(str(export)).aligner.code_vectors
    ratio = float(stored.flatten().norm() / table.flatten().norm())
    assert torch.allclose(stored, table * ratio, atol=1e-6)


def _losses(path):
    return {r["step"]: r["loss"] for r in map(json.loads, path.read_text().splitlines()) if "loss" in r}


def test_resume_through_the_shared_trainer_reproduces_the_run(run, tmp_path):
    values = {"data": {"dirs": [str(run["tokens"])], "max_tokens": 1200, "valid_utterances": 2}, "steps": 4,
              "log_every": 1, "eval_every": 2, "save_every": 2, "sample_every": 0, "log_with": "none",
              "overrides": dict(TINY), "optim": {"warmup_steps": 2}}
    full = train(load_train_config("mobilespeech", "tiny", overrides={**values, "out_dir": str(tmp_path / "a")}))
    assert full.step == 4
    train(load_train_config("mobilespeech", "tiny", overrides={**values, "out_dir": str(tmp_path / "b"), "stop_at": 2}))
    resumed = train(load_train_config("mobilespeech", "tiny",
                                      overrides={**values, "out_dir": str(tmp_path / "b"), "resume": "latest"}))
    assert resumed.start_step == 2
    a, b = _losses(tmp_path / "a" / "log.jsonl"), _losses(tmp_path / "b" / "log.jsonl")
    assert set(a) == set(b) == {1, 2, 3, 4} and all(a[s] == b[s] for s in a), (a, b)
    from safetensors.torch import load_file

    wa, wb = load_file(tmp_path / "a" / "final" / "model.safetensors"), load_file(tmp_path / "b" / "final" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa) and int(wa["num_updates"]) == 4


def test_synthesize_both_modes_speed_and_batched_equals_single(run, tmp_path, capsys):
    out = tmp_path / "o.wav"
    rc, stdout, _ = synth(capsys, "--model", str(run["export"]), "--text", text(3), "--prompt-audio", str(wav(1)),
                          "--prompt-text", text(1), "--out", str(out), "--steps-per-level", "2", "1")
    assert rc == 0 and "o.wav" in stdout
    audio, sr = sf.read(out)
    assert sr == 16000 and len(audio) > 0
    s = Synthesizer.from_pretrained(run["export"])
    assert isinstance(s.model, MobileSpeechModel)
    n_prompt = int(1.0 * 16000)
    cont = s.synthesize([Request(text(2), wav(2), mode="continuation")], MaskDecodingConfig(do_sample=False),
                        prompt_seconds=1.0)[0]
    assert len(cont) > n_prompt  # the prompt's resynthesis, then the generated rest
    for gen in (GenerationConfig(do_sample=False), MaskDecodingConfig(seed=2)):
        reqs = [Request(text(n), wav(1), text(1)) for n in (3, 12)]
        together = s.synthesize(reqs, gen)
        for r, a in zip(reqs, together):
            assert np.allclose(s.synthesize([r], gen)[0], a, atol=1e-5)
    req = [Request(text(12), wav(1), text(1))]
    with torch.no_grad():
        s.model.duration_out.weight.zero_()
        s.model.duration_out.bias.fill_(2.0)
    slow = len(s.synthesize(req, MaskDecodingConfig(do_sample=False))[0])
    fast = len(s.synthesize(req, MaskDecodingConfig(do_sample=False, speed=2.0))[0])
    assert abs(fast / slow - 0.5) < 0.05


def test_synthesize_manifest_skips_bad_lines(run, tmp_path, capsys):
    lines = [
        {"id": "good1", "text": text(3), "prompt_audio": str(wav(1)), "prompt_text": text(1)},
        "this is not json",
        {"id": "noprompttext", "text": text(3), "prompt_audio": str(wav(1))},
        {"id": "missingaudio", "text": text(3), "prompt_audio": "nowhere.wav", "prompt_text": text(1)},
        {"id": "unknownphone", "text": "measure", "prompt_audio": str(wav(1)), "prompt_text": text(1)},
        {"id": "good2", "text": text(12), "prompt_audio": str(wav(2)), "prompt_text": text(2)},
    ]
    manifest = tmp_path / "refs.jsonl"
    manifest.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    out = tmp_path / "gen"
    rc, stdout, err = synth(capsys, "--model", str(run["export"]), "--manifest", str(manifest), "--out-dir", str(out),
                            "--greedy", "--speed", "1.2")
    assert rc == 0 and "2 sentences" in stdout and "4 lines skipped" in stdout
    assert sorted(p.name for p in out.glob("*.wav")) == ["good1.wav", "good2.wav"]
    assert err.count("skipped") == 4


def test_bad_inputs_are_one_line_errors(run, tmp_path, capsys):
    export = str(run["export"])
    base = ["--prompt-audio", str(wav(1)), "--prompt-text", text(1), "--out", str(tmp_path / "x.wav")]
    cases = [
        (["--text", ""] + base, "empty text"),
        (["--text", "!!! ..."] + base, "phonemizes to nothing"),
        (["--text", "a measure"] + base, "phoneme 'ʒ'"),
        (["--text", "hello", "--prompt-audio", str(tmp_path / "none.wav"), "--prompt-text", "x", "--out", "o.wav"],
         "none.wav"),
        (["--text", "hello", "--prompt-audio", str(wav(1)), "--out", str(tmp_path / "x.wav")], "prompt's transcript"),
        (["--text", "hello", "--speed", "0"] + base, "speed=0.0 must be > 0"),
        (["--text", "hello", "--steps-per-level", "0"] + base, "steps_per_level=[0]"),
    ]
    for argv, needle in cases:
        rc, _, err = synth(capsys, "--model", export, *argv)
        assert rc == 2 and needle in one_error_line(err), (argv, err)
    rc = train_main(["mobilespeech", "--data", str(run["tokens"]), "--out", str(tmp_path / "r"), "--stage", "ar"])
    assert rc == 2 and "MobileSpeech trains all its parts together" in capsys.readouterr().err


def test_mobilespeech_flags_are_refused_for_models_without_them():
    from types import SimpleNamespace

    from tts.cli import model_generation_config
    from tts.errors import TTSError

    valle_like = SimpleNamespace(config=SimpleNamespace(model_type="valle"))
    gen = GenerationConfig(seed=4)
    assert model_generation_config(valle_like, gen, speed=None, steps_per_level=None) == gen
    with pytest.raises(TTSError, match="--speed does not apply to valle models"):
        model_generation_config(valle_like, gen, speed=1.5, steps_per_level=None)
    ms = SimpleNamespace(tts_generation_config_class=MaskDecodingConfig, config=None)
    got = model_generation_config(ms, gen, speed=1.5, steps_per_level=[4, 1])
    assert isinstance(got, MaskDecodingConfig) and got.speed == 1.5 and got.seed == 4 and got.steps_per_level == [4, 1]


def test_alignment_plot_of_an_export(run, tmp_path):
    from tts.data import TTSCorpus
    from tts.mobilespeech.inspection import plot_export_alignments, utterance_alignments
    from tts.registry import load_model

    png = plot_export_alignments(run["export"], [run["tokens"]], tmp_path / "align.png", num=3)
    assert png.stat().st_size > 5000
    corpus = TTSCorpus.load([run["tokens"]], valid_utterances=0)
    u = corpus.train[0]
    (ll, path), = utterance_alignments(load_model(run["export"]), [u])
    assert ll.shape == path.shape == (len(u.phonemes), u.num_frames)
    assert (path.sum(0) == 1).all() and (path.sum(1) >= 1).all()  # each frame on one phoneme, none skipped


def test_nan_guard_skips_a_poisoned_step(run, tmp_path):
    from tts.data import TTSCorpus
    from tts.trainer import build_model

    values = {"data": {"dirs": [str(run["tokens"])], "max_tokens": 1200, "valid_utterances": 2}, "steps": 3,
              "log_every": 1, "eval_every": 100, "save_every": 3, "sample_every": 0, "log_with": "none",
              "overrides": dict(TINY), "optim": {"warmup_steps": 1}, "out_dir": str(tmp_path / "nan")}
    cfg = load_train_config("mobilespeech", "tiny", overrides=values)
    model = build_model(cfg, TTSCorpus.load([run["tokens"]], 2))
    forward, calls = model.forward, {"n": 0}

    def poisoned(batch, stage=None):
        out = forward(batch, stage)
        calls["n"] += 1
        if calls["n"] == 2:
            out.loss = out.loss * float("nan")
        return out

    model.forward = poisoned
    result = train(cfg, model=model)
    assert result.nonfinite_steps == 1 and all(torch.isfinite(p).all() for p in model.parameters())
    rows = [json.loads(x) for x in (tmp_path / "nan" / "log.jsonl").read_text().splitlines()]
    assert [r["nonfinite_steps"] for r in rows if "nonfinite_steps" in r] == [0, 1, 1]
