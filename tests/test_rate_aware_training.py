"""The Rate-Aware training recipe (issue 16, training-audit sections 1-3 and 6): the entropy model's own
learning rate, the lambda warm-up, coded rates next to the training estimate, collapse detection."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from tokenizer import ConfigError
from tokenizer.codecs.rate_aware import RateAwareConfig, RateAwareModel
from tokenizer.codecs.rate_aware.entropy import PRECISION, FactorizedPrior, quantize_pmf
from training.codec import list_utterances, load_config, train
from training.codec.loop import collapse_reason, evaluate, lambda_at, optimizer_groups
from training.schedule import lr_scale

SR = 16000
pytestmark = pytest.mark.usefixtures("one_thread")


def test_density_parameters_get_their_own_group():
    model = RateAwareModel(RateAwareConfig.tiny())
    groups = optimizer_groups(model, 10.0)
    assert [g["name"] for g in groups] == ["model", "entropy"] and [g["lr_mult"] for g in groups] == [1.0, 10.0]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.prior.parameters()}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))  # each parameter once
    assert [g["name"] for g in optimizer_groups(nn.Linear(2, 2), 10.0)] == ["model"]  # no density: one group


class _Density(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.prior = FactorizedPrior(channels, init_scale=1.0)

    def density_parameters(self):
        return list(self.prior.parameters())


def _floor_bits(mult, steps=400, channels=2):
    """Training-audit appendix A1: z's density alone, trained on a z that carries nothing (all zeros) with
    the study's optimizer and schedule (1200 steps there, warm-up 1/6 of them; 400 here to stay fast: at
    1200, 0.006 bits with x10 and 0.23 without) -> coded bits per z element (the table of symbol 0)."""
    torch.manual_seed(0)
    m = _Density(channels)
    opt = torch.optim.AdamW(optimizer_groups(m, mult), lr=5e-4, betas=(0.8, 0.99), weight_decay=0.01)
    z = torch.zeros(8, channels, 25)
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = 5e-4 * lr_scale(step, steps, steps // 6, "cosine", 0.1) * g["lr_mult"]
        lik = m.prior.likelihood(z + torch.empty_like(z).uniform_(-0.5, 0.5))
        loss = -torch.log2(lik).sum() / (8 * SR)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
    counts = quantize_pmf(m.prior.pmf(128))
    return float(np.mean(PRECISION - np.log2(counts[:, 128])))


def test_prior_floor_vanishes_with_the_entropy_lr_multiplier():
    """A z channel that carries nothing should cost ~0 bits; at the model's lr its density cannot sharpen
    in a 1200-step run (audit: 0.23 bits per element, 180 bps at the old paper widths)."""
    assert _floor_bits(10.0) < 0.05
    assert _floor_bits(1.0) > 0.15


def test_lambda_warmup_is_geometric_and_never_upwards():
    cfg = load_config(None, ["--objective=rate_distortion", "--lambda_warmup_steps=400",
                             "--lambda_warmup_start=0.8"])
    assert lambda_at(0, cfg, 0.05) == pytest.approx(0.8)
    assert lambda_at(200, cfg, 0.05) == pytest.approx(math.sqrt(0.8 * 0.05))
    assert lambda_at(400, cfg, 0.05) == lambda_at(1000, cfg, 0.05) == 0.05
    assert lambda_at(0, cfg, 3.0) == lambda_at(200, cfg, 3.0) == 3.0  # a start below lambda is raised to it
    assert lambda_at(0, load_config(None, []), 0.05) == 0.05  # no warm-up by default
    with pytest.raises(ConfigError, match="lambda_warmup_start"):
        load_config(None, ["--lambda_warmup_steps=10"])
    with pytest.raises(ConfigError, match="entropy_lr_mult"):
        load_config(None, ["--optim.entropy_lr_mult=0"])


def _collapsed_tiny():
    """A tiny model forced into the collapsed state of the audit's lambda-0.05 runs: y = 0 whatever the input
    (so z is constant), each slice's mean 0 and scale at the floor (min_scale): nothing is transmitted."""
    torch.manual_seed(0)
    model = RateAwareModel(RateAwareConfig.tiny())
    with torch.no_grad():
        out = model.analysis.out.conv
        out.parametrizations.weight.original0.zero_()
        out.bias.zero_()
        for net in model.entropy.param_nets:
            last = net.params[-1]
            last.weight.zero_()
            last.bias.zero_()
            last.bias[last.bias.shape[0] // 2:] = -30.0  # softplus -> 0: sigma = min_scale
    return model.eval()


def _clips(n=3, seconds=0.5):
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    return [(f"c{i}", (0.3 * np.sin(2 * np.pi * (150 + 60 * i) * t) + 0.03 * rng.standard_normal(t.size))
             .astype(np.float32)) for i in range(n)]


def test_empty_y_costs_nothing_coded_but_the_estimate_charges_it():
    model = _collapsed_tiny()
    x = torch.from_numpy(_clips(1)[0][1])[None, None]
    coded = model.coded_bits(x)
    assert int(coded["y_symbols"].abs().sum()) == 0
    y_elements = coded["y_symbols"].numel()
    assert float(coded["bits_y"].sum()) / y_elements < 0.01  # ~0.0014 bits: the table's floor
    model.train()
    torch.manual_seed(0)
    est = model(x).stats["bps_y"] * x.shape[-1] / SR / y_elements
    assert est > 0.1  # the noise relaxation at sigma = 0.11 charges ~0.15 bits per element


def test_collapse_is_detected_on_a_collapsed_model_and_not_on_a_live_one():
    scores, _ = evaluate(_collapsed_tiny(), _clips(), SR, "cpu")
    assert scores["symbols_changed"] == 0 and scores["bps_y_coded"] < 5
    assert scores["mel_distance"] == pytest.approx(scores["mel_distance_no_input"], rel=1e-3)
    reason = collapse_reason(scores)
    assert reason is not None and "differ from those of silent input" in reason and "for silent input" in reason
    torch.manual_seed(0)
    live, _ = evaluate(RateAwareModel(RateAwareConfig.tiny()), _clips(), SR, "cpu")
    assert live["symbols_changed"] > 0.3 and live["code_entropy_bps"] > 100 and live["bps_coded"] > 100
    assert collapse_reason({**live, "mel_distance": 1.0, "mel_distance_no_input": 3.0}) is None


def test_trainer_logs_estimated_and_coded_rates_lambda_and_entropy_lr(tmp_path):
    root = tmp_path / "wavs"
    root.mkdir()
    for spk, (_, x) in zip((11, 22, 33), _clips(3, 0.6)):
        sf.write(root / f"{spk}-1-0000.wav", x, SR)
    cfg = load_config(None, [f"--data.root={root}", "--data.speaker_from_filename=true", "--data.holdout_speakers=1",
                             "--data.segment_seconds=0.2", "--data.batch_size=2", "--data.eval_items=1",
                             "--data.eval_seconds=0.4", f"--out_dir={tmp_path / 'run'}", "--log_with=none",
                             "--objective=rate_distortion", "--lambda_rd=0.1", "--lambda_warmup_steps=2",
                             "--lambda_warmup_start=0.4", "--steps=3", "--log_every=1", "--eval_every=3",
                             "--disc.mpd=false", "--disc.mrd=false", "--loss.mel=0", "--loss.time_l1=1.0",
                             "--model.codec=rate_aware", "--model.preset=tiny", "--optim.lr=1e-3"])
    result = train(cfg, list_utterances(cfg.data))
    lams = [h["lambda_rd"] for h in result.history]
    assert lams == pytest.approx([0.4, 0.2, 0.1])
    for h in result.history:
        assert h["rate/bps_est"] == pytest.approx(h["loss/rate"] * SR) and h["rate/bps_y_est"] > 0
        assert h["lr/entropy"] == pytest.approx(10 * h["lr"])
        assert h["loss/total"] == pytest.approx(h["loss/rate"] + h["lambda_rd"] * (
            h["loss/multi_scale_spectral"] + h["loss/time_l1"]), rel=1e-5)
    logs = result.last_logs
    assert logs["eval/bps_coded"] == pytest.approx(logs["eval/bps_y_coded"] + logs["eval/bps_z_coded"])
    assert logs["eval/bps_coded"] > 0 and logs["eval/collapsed"] in (0.0, 1.0)
    assert {"eval/code_entropy_bps", "eval/mel_distance_no_input"} <= set(logs)
