"""evaluate-codec with several seeds per operating point and with a collapsed model (issue 16): replicates
are named and averaged into one rate-distortion point; a collapsed model is reported, never plotted or
used in the Bjontegaard deltas."""

import argparse
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from tokenizer import AutoCodecConfig, AutoCodecTokenizer, CodecError
from evaluation.evaluate_codec import bjontegaard, build_systems, main, rd_points
from evaluation.systems import TokenizerCodec

SR = 16000
pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(path, lam, seed, collapse=False):
    tok = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("rate-aware", preset="tiny", rd_lambda=lam),
                                         seed=seed)
    if collapse:  # y = 0 whatever the input, so z is constant too: the codes ignore the input
        with torch.no_grad():
            tok.model.analysis.out.conv.parametrizations.weight.original0.zero_()
            tok.model.analysis.out.conv.bias.zero_()
    tok.save_pretrained(path)
    return str(path)


def _args(codecs):
    return argparse.Namespace(codec=codecs, device=None, baselines=[], num_quantizers=None, levels=None)


def test_seeds_of_one_point_are_numbered_replicates_and_one_model_twice_is_an_error(tmp_path):
    a, b = _tiny(tmp_path / "s0", 0.5, 0), _tiny(tmp_path / "s1", 0.5, 1)
    systems = build_systems(_args([a, b]))
    assert [s.name for s in systems] == ["rate-aware@lambda=0.5#1", "rate-aware@lambda=0.5#2"]
    assert {s.info()["point"] for s in systems} == {"rate-aware@lambda=0.5"} and systems[1].source == b
    with pytest.raises(CodecError, match="duplicate"):
        build_systems(_args([a, a]))


def test_a_collapsed_model_codes_what_silence_codes(tmp_path):
    x = (0.3 * np.sin(2 * np.pi * 200 * np.arange(4000) / SR)).astype(np.float32)
    live = TokenizerCodec(AutoCodecTokenizer.from_pretrained(_tiny(tmp_path / "live", 0.5, 0)))
    dead = TokenizerCodec(AutoCodecTokenizer.from_pretrained(_tiny(tmp_path / "dead", 0.05, 0, collapse=True)))
    assert live.roundtrip(x).symbols_changed > 0.1
    assert dead.roundtrip(x).symbols_changed == 0.0


def _summary(name, family, point, rate, value, collapsed=False):
    return {"name": name, "family": family, "point": point, "measured_bitrate": rate, "collapsed": collapsed,
            "metrics": {"stoi": {"mean": value}}}


def test_rd_points_average_replicates_and_drop_collapsed_models():
    systems = [_summary("lc@k=3#1", "lc", "lc@k=3", 1500, 0.70), _summary("lc@k=3#2", "lc", "lc@k=3", 1500, 0.74),
               _summary("lc@k=8#1", "lc", "lc@k=8", 4000, 0.80), _summary("lc@k=8#2", "lc", "lc@k=8", 4000, 0.82),
               _summary("ra@0.05", "ra", "ra@0.05", 300, 0.99, collapsed=True),  # would dominate the front
               _summary("ra@1#1", "ra", "ra@1", 1000, 0.70), _summary("ra@1#2", "ra", "ra@1", 1400, 0.74),
               _summary("ra@4", "ra", "ra@4", 3000, 0.81)]
    points = {p["name"]: p for p in rd_points(systems, ["stoi"])}
    assert set(points) == {"lc@k=3", "lc@k=8", "ra@1", "ra@4"}
    assert points["ra@1"]["measured_bitrate"] == 1200 and points["ra@1"]["rate_spread"] == 400
    assert points["ra@1"]["metrics"]["stoi"]["mean"] == pytest.approx(0.72)
    assert points["ra@1"]["replicates"] == ["ra@1#1", "ra@1#2"]
    bd = bjontegaard(list(points.values()), ["stoi"], "lc")["results"][0]
    assert bd["bd_rate_percent"] < 0 and bd["overlap"]["points"] == 2  # the collapsed point is not on the front


def test_evaluate_codec_reports_replicates_and_collapsed_models(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        t = np.arange(int(0.5 * SR)) / SR
        sf.write(data / f"u{i}.wav", (0.3 * np.sin(2 * np.pi * (150 + 50 * i) * t)
                                      + 0.02 * rng.standard_normal(t.size)).astype(np.float32), SR)
    codecs = [_tiny(tmp_path / "a0", 0.5, 0), _tiny(tmp_path / "a1", 0.5, 1), _tiny(tmp_path / "b0", 2.0, 0),
              _tiny(tmp_path / "dead", 0.05, 0, collapse=True)]
    out = tmp_path / "report"
    assert main(["--codec", *codecs, "--data", str(data), "--out", str(out), "--metrics", "mel_distance",
                 "--num-examples", "0"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    collapsed = [s["name"] for s in summary["systems"] if s["collapsed"]]
    assert collapsed == ["rate-aware@lambda=0.05"]
    assert [p["name"] for p in summary["rd_points"]] == ["rate-aware@lambda=0.5", "rate-aware@lambda=2"]
    assert summary["rd_points"][0]["replicates"] == ["rate-aware@lambda=0.5#1", "rate-aware@lambda=0.5#2"]
    md = (out / "results.md").read_text()
    assert "## Collapsed models" in md and "## Rate-distortion points over replicates" in md
    assert f"rate-aware@lambda=0.5#2 = `{codecs[1]}`" in md
