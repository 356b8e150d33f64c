"""TTS data and trainer on the built-in sample corpus tokenized with a tiny codec: shard checks, prompts and
batches, exact resume, the NaN/inf guard."""

import json
import math
import shutil

import pytest
import torch

from data_prep.tokenize_corpus import main as tokenize_main
from data_prep.sample_corpus import SAMPLE_ROOT
from tokenizer import AutoCodecConfig, AutoCodecTokenizer
from tts.data import TokenBatches, TTSCorpus
from tts.errors import TTSError
from tts.trainer import load_train_config, train

HAS_ESPEAK = shutil.which("espeak-ng") is not None or shutil.which("espeak") is not None
pytestmark = pytest.mark.skipif(not HAS_ESPEAK, reason="phoneme ids need espeak-ng")

TINY_MODEL = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}


def tokenize_sample(root):
    """The sample corpus (20 utterances, one speaker) tokenized with a tiny 50 Hz, 4 x 64 codec."""
    config = AutoCodecConfig.for_model("language-codec", preset="tiny", encoder_strides=[2, 4, 5, 8],
                                       num_quantizers=4, n_fft=640)
    codec_dir = AutoCodecTokenizer.from_config(config).save_pretrained(root / "codec")
    out = root / "tokens"
    assert tokenize_main(["libritts", "--codec", str(codec_dir), "--root", str(SAMPLE_ROOT), "--out", str(out),
                          "--num-workers", "0", "--shard-size", "8"]) == 0
    return codec_dir, out


def quick_config(tokens, out, **extra):
    values = {"data": {"dirs": [str(tokens)], "max_tokens": 1200, "valid_utterances": 2}, "steps": 6,
              "out_dir": str(out), "log_every": 1, "eval_every": 3, "save_every": 3, "sample_every": 0,
              "log_with": "none", "overrides": dict(TINY_MODEL), "optim": {"warmup_steps": 2}}
    for key, value in extra.items():
        if isinstance(value, dict):
            values[key] = {**values.get(key, {}), **value}
        else:
            values[key] = value
    return load_train_config("valle", "tiny", overrides=values)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return tokenize_sample(tmp_path_factory.mktemp("tts"))


def test_corpus_reads_codec_vocab_and_splits(sample):
    _, tokens = sample
    corpus = TTSCorpus.load([tokens], valid_utterances=3)
    assert (corpus.num_quantizers, corpus.codebook_size, corpus.frame_rate) == (4, 64, 50.0)
    assert len(corpus.train) == 17 and len(corpus.valid) == 3
    assert corpus.codec["weights_digest"] and len(corpus.vocab) > 20
    assert {u.id for u in corpus.valid} == {u.id for u in TTSCorpus.load([tokens], valid_utterances=3).valid}
    batches = TokenBatches(corpus.train, max_tokens=1500, seed=1, max_prompt_frames=100)
    first = [batches.batch(s) for s in range(12)]
    again = TokenBatches(corpus.train, max_tokens=1500, seed=1, max_prompt_frames=100)
    for s in (0, 5, 11):  # a pure function of (seed, step), whatever was asked before
        b = again.batch(s)
        assert b.ids == first[s].ids and torch.equal(b.prompt, first[s].prompt)
    for b in first:
        longest = max(int(b.phoneme_lengths[i] + b.prompt_lengths[i] + b.code_lengths[i]) for i in range(len(b)))
        assert len(b) * longest <= 1500
        assert (b.prompt_lengths >= 1).all() and (b.prompt_lengths <= 100).all()
    # cross-sentence prompts: another utterance of the same speaker, its phonemes first
    other = TokenBatches(corpus.train, max_tokens=3000, seed=1, prompt="other", max_prompt_frames=400)
    b = other.batch(0)
    by_id = {u.id: u for u in corpus.train}
    for i, uid in enumerate(b.ids):
        target = by_id[uid]
        assert torch.equal(b.codes[i, :, : int(b.code_lengths[i])], target.codes.long())
        assert int(b.phoneme_lengths[i]) > len(target.phonemes)
        prompt = b.prompt[i, :, : int(b.prompt_lengths[i])]
        assert any(torch.equal(prompt, u.codes.long()) for u in corpus.train if u.id != uid)


def test_shard_directories_must_agree(sample, tmp_path):
    _, tokens = sample

    def variant(name, edit_manifest=None, edit_vocab=None):
        d = tmp_path / name
        shutil.copytree(tokens, d)
        if edit_manifest:
            m = json.loads((d / "manifest.json").read_text())
            edit_manifest(m)
            (d / "manifest.json").write_text(json.dumps(m))
        if edit_vocab:
            v = json.loads((d / "phonemes.json").read_text())
            edit_vocab(v)
            (d / "phonemes.json").write_text(json.dumps(v))
        return d

    no_phonemes = variant("nophon", lambda m: m.update(has_phonemes=False))
    with pytest.raises(TTSError, match=f"{no_phonemes} has no phoneme ids"):
        TTSCorpus.load([no_phonemes])
    other_codec = variant("digest", lambda m: m["codec"].update(weights_digest="0" * 16, tokens_digest="1" * 16))
    with pytest.raises(TTSError, match="codec mismatch in tokens_digest"):
        TTSCorpus.load([tokens, other_codec])
    other_decoder = variant("decoder", lambda m: m["codec"].update(weights_digest="0" * 16))  # same tokens
    with pytest.raises(TTSError, match="the same utterance twice"):  # the codec passed; then F14 (the same ids)
        TTSCorpus.load([tokens, other_decoder])
    other_vocab = variant("vocab", edit_vocab=lambda v: v["tokens"].append("zz"))
    with pytest.raises(TTSError, match="phoneme vocabularies differ"):
        TTSCorpus.load([tokens, other_vocab])
    with pytest.raises(TTSError, match="not found"):
        TTSCorpus.load([tmp_path / "missing"])
    # F14 (tts-adversarial-3): one corpus given twice (or tokenized twice) is refused, naming an id and both folders
    with pytest.raises(TTSError, match=r"utterance '9000_1_000001_000000' is in .*tokens and in .*copy"):
        TTSCorpus.load([tokens, variant("copy")], valid_utterances=2)
    with pytest.raises(TTSError, match="the same utterance twice"):
        TTSCorpus.load([tokens, tokens])
    # F7: speakers compare as strings (LibriTTS ids are numbers in YAML); a speaker the corpus lacks is refused
    with pytest.raises(TTSError, match="no training utterances left"):  # 9000 held out: the only speaker
        TTSCorpus.load([tokens], valid_speakers=[9000])
    with pytest.raises(TTSError, match=r"data.valid_speakers: nobody not in the corpus \(its speakers: 9000\)"):
        TTSCorpus.load([tokens], valid_speakers=["nobody"])
    # F19: a corpus of no utterances says so (not "re-run without --no-phonemes")
    empty = variant("empty", lambda m: (m.update(has_phonemes=False), m["counts"].update(utterances=0)))
    with pytest.raises(TTSError, match="holds no utterances"):
        TTSCorpus.load([empty])


def _losses(path):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_resume_reproduces_uninterrupted_run(sample, tmp_path):
    _, tokens = sample
    full = train(quick_config(tokens, tmp_path / "full"))
    assert full.step == 6 and (tmp_path / "full" / "final" / "model.safetensors").is_file()
    part = train(quick_config(tokens, tmp_path / "part", stop_at=3))
    assert part.step == 3 and part.export_dir is None
    resumed = train(quick_config(tokens, tmp_path / "part", resume="latest"))
    assert resumed.start_step == 3
    a, b = _losses(tmp_path / "full" / "log.jsonl"), _losses(tmp_path / "part" / "log.jsonl")
    assert set(a) == set(b) == set(range(1, 7))
    assert all(a[s] == b[s] for s in a), (a, b)
    valid = [json.loads(x) for x in (tmp_path / "part" / "log.jsonl").read_text().splitlines() if "valid/ar/top10" in x]
    assert valid and all(f"valid/nar/top10_q{q}" in valid[-1] for q in (2, 3, 4))


def test_nan_guard_skips_poisoned_step(sample, tmp_path):
    _, tokens = sample
    cfg = quick_config(tokens, tmp_path / "nan", steps=4, save_every=4, eval_every=100)
    from tts.trainer import build_model

    model = build_model(cfg, TTSCorpus.load([tokens], 2))
    forward = model.forward
    calls = {"n": 0}

    def poisoned(batch, stage=None):
        out = forward(batch, stage)
        calls["n"] += 1
        if calls["n"] == 2:  # the second training step produces NaN
            out.loss = out.loss * float("nan")
        return out

    model.forward = poisoned
    result = train(cfg, model=model)
    assert result.nonfinite_steps == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())
    rows = [json.loads(x) for x in (tmp_path / "nan" / "log.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "nonfinite_steps" in r]
    assert [r["nonfinite_steps"] for r in rows] == [0, 1, 1, 1]
    assert "loss" not in rows[1] and all(math.isfinite(r["loss"]) for r in rows if r["step"] != 2)
    state = json.loads((tmp_path / "nan" / "state" / "step-4" / "trainer.json").read_text())
    assert state["nonfinite_steps"] == 1


def test_time_limit_stops_with_state_and_export(sample, tmp_path):
    _, tokens = sample
    result = train(quick_config(tokens, tmp_path / "t", steps=50, max_minutes=1e-9, save_every=100, eval_every=100))
    assert result.step == 1 and result.export_dir == tmp_path / "t" / "final"
    assert (tmp_path / "t" / "state" / "step-1" / "trainer.json").is_file()


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_config_files_spell_out_the_presets(preset):
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "configs" / "tts" / f"valle_{preset}.yaml"
    assert load_train_config("valle", preset, path) == load_train_config("valle", preset)


def test_every_tts_config_file_loads_and_names_its_model():
    """Every YAML under configs/tts (presets, Table 2, experiment configs) loads with the model it names:
    a misspelt key or section fails here rather than at the start of a long run."""
    from pathlib import Path

    import yaml

    paths = sorted((Path(__file__).resolve().parents[1] / "configs" / "tts").rglob("*.yaml"))
    assert len(paths) >= 5
    for path in paths:
        raw = yaml.safe_load(path.read_text())
        cfg = load_train_config(raw["model"], raw.get("preset", "tiny"), str(path))
        assert cfg.model == raw["model"], path


def test_ar_stop_drops_the_ar_loss_for_good_and_resume_repeats_it(sample, tmp_path):
    """`ar_stop_top1`: once the AR's running top-1 reaches it (not before update 10), later steps train the NAR
    alone; the decision lives in the model's state, so a resumed run logs what an uninterrupted one logs."""
    _, tokens = sample
    stop = {"overrides": {**TINY_MODEL, "ar_stop_top1": 1e-6}, "steps": 14, "save_every": 12, "eval_every": 100}
    full = train(quick_config(tokens, tmp_path / "full", **stop))
    rows = [json.loads(x) for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines() if '"ar/stopped"' in x]
    assert [r["ar/stopped"] for r in rows] == [0.0] * 9 + [1.0] * 5
    assert all("ar/loss" in r for r in rows[:10]) and not any("ar/loss" in r for r in rows[10:])
    assert all(any(k.startswith("nar/top1_q") for k in r) for r in rows)
    from tts.registry import load_model

    assert int(load_model(full.export_dir).ar_stopped_at) == 10
    train(quick_config(tokens, tmp_path / "part", stop_at=12, **stop))
    train(quick_config(tokens, tmp_path / "part", resume="latest", **stop))
    assert _losses(tmp_path / "full" / "log.jsonl") == _losses(tmp_path / "part" / "log.jsonl")


def test_metrics_that_differ_between_processes_are_merged_key_by_key():
    from tts.trainer import merge_process_metrics

    merged = merge_process_metrics([{"loss": 1.0, "nar/top1_q2": 0.5}, {"loss": 3.0, "nar/top1_q5": 0.25}])
    assert merged == {"loss": 2.0, "nar/top1_q2": 0.5, "nar/top1_q5": 0.25}


def test_a_run_folder_is_one_run(sample, tmp_path, capsys):
    """F4, F5 (tts-adversarial-3): `--resume` with another codec's tokens, another preset, model or data is
    refused in one line naming what differs (before any weights are loaded); a fresh run into a folder that
    holds a run is refused; the same settings resume."""
    from tokenizer.utils.errors import ConfigError
    from tts.cli import train_main

    _, tokens = sample
    run = tmp_path / "run"
    train(quick_config(tokens, run, steps=4, stop_at=2, save_every=2))
    identity = json.loads((run / "run.json").read_text())
    assert identity["model"] == "valle" and identity["codec"]["tokens_digest"]
    assert json.loads((run / "state" / "step-2" / "trainer.json").read_text())["run"] == identity
    other_codec = tmp_path / "rand"
    shutil.copytree(tokens, other_codec)
    manifest = json.loads((other_codec / "manifest.json").read_text())
    manifest["codec"].update(weights_digest="0" * 16, tokens_digest="1" * 16)  # same shapes, other weights
    (other_codec / "manifest.json").write_text(json.dumps(manifest))
    cases = [({"data": {"dirs": [str(other_codec)]}}, "codec tokens_digest was"),
             ({"overrides": {**TINY_MODEL, "hidden_size": 64}}, "overrides was"),
             ({"data": {"valid_utterances": 3}}, "validation split differs"),
             ({"seed": 1}, "seed was 0, now 1"),
             ({"data": {"max_tokens": 1500, "dirs": [str(tokens)]}}, "batches was"),
             ({"data": {"max_tokens": 1200, "dirs": [str(tokens)]}, "preset": "small"},
              "preset was 'tiny', now 'small'")]
    for change, needle in cases:
        with pytest.raises(ConfigError, match=needle):
            train(quick_config(tokens, run, steps=4, save_every=2, resume="latest", **change))
    # through the CLI: one line, another model type on a VALL-E run included
    flags = ["--data", str(tokens), "--out", str(run), "--steps", "4", "--log_with=none", "--data.max_tokens=1200",
             "--data.valid_utterances=2", *[f"--overrides.{k}={v}" for k, v in TINY_MODEL.items()]]
    capsys.readouterr()
    assert train_main(["mobilespeech", *flags, "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model was 'valle', now 'mobilespeech'" in err[0]
    assert train_main(["valle", *flags]) == 2  # a fresh run into it
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a run" in err[0] and "--resume" in err[0]
    result = train(quick_config(tokens, run, steps=4, save_every=2, resume="latest"))  # the same run: resumes
    assert result.start_step == 2 and result.step == 4


def test_final_export_is_atomic_and_repaired_on_resume(sample, tmp_path, capsys):
    """F10: the export is written beside its folder and renamed into place; a final export cut short (a kill
    during it) is made again by `--resume` from the last state; a truncated export is one line to load."""
    from tts.cli import synth_main
    from tts.registry import load_model

    _, tokens = sample
    run = tmp_path / "run"
    train(quick_config(tokens, run, steps=2, save_every=2, eval_every=100))
    final = run / "final" / "model.safetensors"
    whole = final.read_bytes()
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []  # no partial export left
    final.write_bytes(whole[: len(whole) // 2])  # killed while writing it
    with pytest.raises(TTSError, match="cannot load TTS model"):
        load_model(run / "final")
    capsys.readouterr()
    assert synth_main(["--model", str(run / "final"), "--text", "hi", "--prompt-audio", "x.wav", "--prompt-text",
                       "hi", "--out", str(tmp_path / "o.wav")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    with pytest.raises(TTSError, match="cannot load TTS model"):  # T39: --init_from a truncated export
        train(quick_config(tokens, tmp_path / "warm", steps=2, init_from=str(run / "final")))
    result = train(quick_config(tokens, run, steps=2, save_every=2, eval_every=100, resume="latest"))
    assert result.start_step == result.step == 2 and final.read_bytes() == whole
    assert load_model(run / "final") is not None


@pytest.mark.parametrize("flag, needle", [("--max_minutes=0", "max_minutes=0.0 must be > 0"),
                                          ("--max_minutes=nan", "max_minutes=nan must be > 0"),
                                          ("--max_minutes=-1", "max_minutes=-1.0 must be > 0"),
                                          ("--steps=-3", "steps=-3 must be >= 1"),
                                          ("--steps=0", "steps=0 must be >= 1"),
                                          ("--optim.lr=nan", "optim.lr=nan must be a number > 0"),
                                          ("--optim.lr=-1", "optim.lr=-1.0 must be"),
                                          ("--optim.schedule=wobbly", "optim.schedule='wobbly' must be one of"),
                                          ("--data.prompt_seconds=0", "data.prompt_seconds=0.0 must be"),
                                          ("--data.max_seconds=0", "data.max_seconds=0.0 must be > 0"),
                                          ("--samples.prompt_seconds=nan", "samples.prompt_seconds=nan must be"),
                                          ("--nonfinite_patience=0", "nonfinite_patience=0 must be >= 1")])
def test_time_box_and_steps_are_checked_as_train_codec_does(sample, tmp_path, capsys, flag, needle):
    """F9, F16 (tts-adversarial-3): max_minutes 0 / NaN / negative and steps <= 0 are refused in one line,
    before anything is written (train-codec refuses the same values)."""
    from tts.cli import train_main

    _, tokens = sample
    quick = ["--steps=2", "--data.max_tokens=1200", "--data.valid_utterances=2", "--sample_every=0",
             *[f"--overrides.{k}={v}" for k, v in TINY_MODEL.items()]]  # short even where the check is missing
    assert train_main(["valle", "--data", str(tokens), "--out", str(tmp_path / "r"), "--log_with=none", *quick,
                       flag]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "r").exists()


def test_train_tts_bad_out_config_and_full_disk_are_one_line(sample, tmp_path, capsys, monkeypatch):
    """F13 (tts-adversarial-3): --out an existing file or a path under a file, a --config whose YAML is a list,
    a full disk while writing the state (safetensors' own exception): one line each, no traceback."""
    from safetensors import SafetensorError

    from tts.cli import train_main

    _, tokens = sample
    (tmp_path / "file").write_text("x")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    flags = ["--data", str(tokens), "--steps", "2", "--log_with=none", "--data.max_tokens=1200",
             "--data.valid_utterances=2", "--save_every=2", "--eval_every=100", "--sample_every=0",
             *[f"--overrides.{k}={v}" for k, v in TINY_MODEL.items()]]
    cases = [(["--out", str(tmp_path / "file")], "is a file, not a folder", 2),
             (["--out", str(tmp_path / "file" / "run")], "is a file, not a folder", 2),
             (["--out", str(tmp_path / "r"), "--config", str(tmp_path / "list.yaml")], "must be a YAML mapping", 2)]

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    import accelerate

    for argv, needle, code in cases:
        assert train_main(["valle", *flags, *argv]) == code
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
    monkeypatch.setattr(accelerate.Accelerator, "save_state", full)
    assert train_main(["valle", *flags, "--out", str(tmp_path / "full")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("train-tts: error: disk full writing") and "state/step-2" in err[-1]


def test_resumed_log_has_each_step_once_and_a_state_that_does_not_fit_is_one_line(sample, tmp_path):
    """F19: after a kill, the resumed run repeats the steps after its state: log.jsonl keeps one row per step.
    F13: a state that does not fit the configured model (saved without a run identity, by an older version)
    is one line, not torch's size-mismatch traceback."""
    from tokenizer.utils.errors import ConfigError

    _, tokens = sample
    run = tmp_path / "run"
    train(quick_config(tokens, run, steps=4, save_every=2, eval_every=100))
    shutil.rmtree(run / "state" / "step-4")  # as if killed after step 4 was logged, before its state
    (run / "final").rename(tmp_path / "old-final")
    train(quick_config(tokens, run, steps=4, save_every=2, eval_every=100, resume="latest"))
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
    assert [r["step"] for r in rows if "valid/ar/loss" in r] == [4]
    trainer = run / "state" / "step-4" / "trainer.json"
    saved = json.loads(trainer.read_text())
    saved.pop("run")
    trainer.write_text(json.dumps(saved))
    (run / "run.json").unlink()
    with pytest.raises(ConfigError, match="the saved state does not fit the model now configured"):
        train(quick_config(tokens, run, steps=6, save_every=2, resume="latest",
                           overrides={**TINY_MODEL, "hidden_size": 64}))


def test_a_diverged_run_stops_without_writing_its_weights(sample, tmp_path):
    """F20: with a learning rate far too high, every step after the first is non-finite; after
    `nonfinite_patience` of them in a row the run stops with one line, and writes no state and no export of the
    broken weights."""
    _, tokens = sample
    run = tmp_path / "run"
    with pytest.raises(TTSError, match=r"steps \d+\.\.\d+: 3 non-finite steps in a row"):
        train(quick_config(tokens, run, steps=8, save_every=8, eval_every=100,
                           optim={"lr": 1e30, "warmup_steps": 0}))
    assert not (run / "final").exists() and not (run / "state").exists()


def test_two_process_training_with_torchrun(sample, tmp_path):
    """train-tts under torchrun on two CPU processes (gloo): one summary, one export, a log row per step, and a
    resumable state holding both ranks' random states."""
    import os
    import subprocess
    import sys

    _, tokens = sample
    out = tmp_path / "ddp"
    flags = [f"--overrides.{k}={v}" for k, v in TINY_MODEL.items()]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29547", "-m",
           "tts.cli", "train", "valle", "--data", str(tokens), "--preset", "tiny", "--out", str(out), "--steps", "2",
           *flags, "--data.max_tokens=1200", "--data.valid_utterances=2", "--log_every=1", "--eval_every=2",
           "--save_every=2", "--sample_every=0", "--log_with=none"]
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained steps 0..2") == 1, done.stdout[-2000:]  # rank 0 alone reports
    assert sorted(_losses(out / "log.jsonl")) == [1, 2]
    assert {p.name for p in (out / "state" / "step-2").glob("random_states_*.pkl")} == {
        "random_states_0.pkl", "random_states_1.pkl"}
    assert (out / "final" / "model.safetensors").is_file()
