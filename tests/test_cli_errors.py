"""Every console script turns a user error into one line `prog: error: ...` naming the bad value, with a
non-zero exit and no traceback (tokenizer.cli.run_cli). Each case runs the script's `main(argv)` in-process."""

from __future__ import annotations

import importlib
import json
import tomllib
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def _garbage(tmp: Path, name: str) -> Path:
    path = tmp / name
    path.write_bytes(bytes(range(256)) * 4)
    return path


def _not_a_codec_checkpoint(tmp: Path) -> Path:
    path = tmp / "other.ckpt"
    torch.save({"state_dict": {"decoder.weight": torch.zeros(2)}}, path)
    return path


def _stable_dir_with_bad_config(tmp: Path) -> Path:
    d = tmp / "official"
    d.mkdir()
    (d / "model_config.json").write_text(json.dumps({"model": {"encoder": {"type": "taae"}}}))
    return d


def _model_type_dir(tmp: Path, model_type: str, name: str) -> Path:
    d = tmp / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": model_type}))
    return d


def _generated(tmp: Path) -> Path:
    d = tmp / "gen"
    d.mkdir()
    return d


# (script, argv builder: tmp -> (argv, the bad value the message must name))
CASES = [
    ("tokenize-corpus", lambda t: (["libritts", "--codec", "nope", "--out", str(t / "o")], "nope")),
    ("tokenize-corpus", lambda t: (["folder", "--root", "/nonexistent", "--out", str(t / "o")], "/nonexistent")),
    ("tokenize-corpus", lambda t: (["libritts", "--codec", str(_model_type_dir(t, "bert", "bert_dir")), "--out",
                                    str(t / "o")], "'bert'")),
    ("tokenize-corpus", lambda t: (["libritts", "--codec", str(_model_type_dir(t, "encodec", "encodec_noweights")),
                                    "--out", str(t / "o")], "encodec_noweights")),
    ("tokenize-corpus", lambda t: (["libritts", "--codec", str(_model_type_dir(t, "vibevoice_acoustic_tokenizer", "vv")),
                                    "--out", str(t / "o")], "vibevoice_acoustic_tokenizer")),
    ("codec-demo", lambda t: (["--codec", "nope", "--out", str(t / "o")], "nope")),
    ("codec-demo", lambda t: (["--audio", str(t / "missing.wav"), "--out", str(t / "o")], "missing.wav")),
    ("codec-demo", lambda t: (["--codec", "stable-codec", "--out", str(t / "o")], "stable-codec")),
    ("convert-language-codec", lambda t: ([str(t / "missing.ckpt"), str(t / "o")], "missing.ckpt")),
    ("convert-language-codec", lambda t: ([str(_garbage(t, "garbage.ckpt")), str(t / "o")], "garbage.ckpt")),
    ("convert-language-codec", lambda t: ([str(_garbage(t, "bad.safetensors")), str(t / "o")], "bad.safetensors")),
    ("convert-language-codec", lambda t: ([str(_not_a_codec_checkpoint(t)), str(t / "o")], "other.ckpt")),
    ("convert-stable-codec", lambda t: ([str(t / "missing_dir"), str(t / "o")], "missing_dir")),
    ("convert-stable-codec", lambda t: ([str(_stable_dir_with_bad_config(t)), str(t / "o")], "model_config.json")),
    ("train-codec", lambda t: (["--no_such_key=1"], "no_such_key")),
    ("evaluate-codec", lambda t: (["--data", "/nonexistent", "--baselines", "opus:6", "--out", str(t / "o")],
                                  "/nonexistent")),
    ("evaluate-codec", lambda t: (["--data", "no-such-corpus", "--baselines", "opus:6", "--out", str(t / "o")],
                                  "no-such-corpus")),
    ("evaluate-codec", lambda t: (["--codec", "nope", "--data", "libritts", "--out", str(t / "o")], "nope")),
    ("evaluate-codec", lambda t: (["--codec", str(_model_type_dir(t, "bert", "bert_dir")), "--data", "libritts",
                                   "--out", str(t / "o")], "'bert'")),
    ("evaluate-codec", lambda t: (["--codec", "stable-codec", "--data", "libritts", "--out", str(t / "o")],
                                  "stable-codec")),
    ("evaluate-codec", lambda t: (["--data", "libritts", "--metrics", "nope", "--out", str(t / "o")], "nope")),
    ("evaluate-tts", lambda t: (["--generated", str(_generated(t)), "--reference", str(t / "missing.jsonl"),
                                 "--out", str(t / "o")], "missing.jsonl")),
    ("evaluate-tts", lambda t: (["--generated", str(t / "nodir"), "--reference", str(_garbage(t, "ref.jsonl")),
                                 "--out", str(t / "o")], "ref.jsonl")),
    ("train-tts", lambda t: (["valle", "--data", str(t / "no_tokens"), "--out", str(t / "o")], "no_tokens")),
    ("train-tts", lambda t: (["nope", "--data", str(t), "--out", str(t / "o")], "nope")),
    ("synthesize", lambda t: (["--model", str(t / "no_model"), "--text", "Hello.", "--prompt-audio",
                               str(t / "p.wav"), "--prompt-text", "Hi.", "--out", str(t / "o.wav")], "no_model")),
    ("build-multivoice-corpus", lambda t: (["--out", str(t / "o"), "--real-root", str(t / "no_real")], "no_real")),
]


def test_every_console_script_has_a_case():
    assert {name for name, _ in CASES} == set(SCRIPTS)


@pytest.mark.parametrize("script,make", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_user_error_is_one_line_naming_the_value(script, make, tmp_path, capfd):
    module, _, function = SCRIPTS[script].partition(":")
    main = getattr(importlib.import_module(module), function)
    argv, value = make(tmp_path)
    capfd.readouterr()
    rc = main(argv)
    err = capfd.readouterr().err
    assert rc != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script}: error: "), err
    assert value in lines[0], lines[0]


@pytest.mark.parametrize("script,argv", [
    ("codec-demo", ["--codec", "stable-codec", "--random-weights"]),
    ("evaluate-codec", ["--codec", "stable-codec", "--random-weights", "--data", "libritts", "--max-utterances", "1",
                        "--metrics", "si_sdr", "--num-examples", "0"]),
])
def test_random_weights_is_the_explicit_way_to_an_untrained_builtin(script, argv, tmp_path, monkeypatch):
    """Refused above without the flag; with it, the loader is asked for random weights (a tiny stand-in
    replaces the untrained preset, which takes a minute on a CPU)."""
    from tokenizer import AutoCodecConfig, AutoCodecTokenizer

    asked = []

    def fake(name, device=None, random_weights=False):
        asked.append((name, random_weights))
        return AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("language-codec", preset="tiny"))

    module, _, function = SCRIPTS[script].partition(":")
    mod = importlib.import_module(module)
    monkeypatch.setattr(mod.AutoCodecTokenizer, "from_pretrained", staticmethod(fake))
    assert getattr(mod, function)([*argv, "--out", str(tmp_path / "o")]) == 0
    assert asked == [("stable-codec", True)]
