"""Codec trainer: config, losses, discriminators, data crops, and tiny end-to-end runs through the CLI
(export loadable by the tokenizer, exact resume, rate-distortion objective)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from tokenizer import AutoCodecConfig, AutoCodecTokenizer, ConfigError
from training.codec import list_utterances, load_config, train as _train
from training.codec.cli import main
from training.codec.config import DataConfig, LossConfig, parse_overrides
from training.codec.data import CodecData, filename_speaker
from training.codec.discriminators import (STABLE_CODEC_FFT_SIZES, Discriminators, MultiPeriodDiscriminator,
                                            MultiResolutionDiscriminator, MultiScaleSTFTDiscriminator)
from tokenizer.losses import MultiScaleSpectralLoss
from tokenizer.model_outputs import CodecModelOutput
from training.codec.losses import (MelLoss, PerceptualFeatureLoss, ReconstructionLoss,
                                    discriminator_hinge_loss, feature_matching_loss, fft_resample,
                                    generator_hinge_loss, time_l1)
from training.schedule import lr_scale

TINY = Path(__file__).resolve().parents[1] / "configs" / "codec" / "language_codec_tiny.yaml"
SR = 16000


def make_data(cfg, sr, *args, **kwargs):
    return CodecData(list_utterances(cfg), cfg, sr, *args, **kwargs)


def train(cfg, **kwargs):
    return _train(cfg, list_utterances(cfg.data), **kwargs)


def _signal(seed=0, n=4000, batch=2):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / SR
    tone = 0.3 * torch.sin(2 * math.pi * (220 + 110 * torch.arange(batch))[:, None] * t)
    return (tone + 0.05 * torch.randn(batch, n, generator=g))[:, None, :]


@pytest.fixture(scope="module")
def wav_dir(tmp_path_factory):
    """A flat folder of LibriSpeech-style names `<speaker>-<chapter>-<utt>.wav`: 4 speakers, tones + noise."""
    root = tmp_path_factory.mktemp("wavs")
    rng = np.random.default_rng(0)
    for spk in (11, 22, 33, 44):
        for utt in range(2):
            sec = 0.6 + 0.2 * utt
            t = np.arange(int(sec * 24000)) / 24000  # stored at 24 kHz: the trainer resamples to 16 kHz
            x = 0.2 * np.sin(2 * np.pi * (150 + 2 * spk + 40 * utt) * t) + 0.02 * rng.standard_normal(t.size)
            sf.write(root / f"{spk}-100-{utt:04d}.wav", x.astype(np.float32), 24000)
    sf.write(root / "55-100-0000.wav", np.zeros(800, np.float32) + 0.1, 16000)  # 50 ms: shorter than a crop
    return root


def _cli_args(wav_dir, out, *extra):
    return ["--config", str(TINY), f"--data.root={wav_dir}", f"--out_dir={out}", "--log_with=none", *extra]


def _history(out, kind="loss/total"):
    """Rows of log.jsonl with `kind`: training rows (default) or eval rows ("eval/stoi")."""
    rows = [json.loads(line) for line in (Path(out) / "log.jsonl").read_text().splitlines()]
    return [r for r in rows if kind in r]


# ------------------------------------------------------------------ config
def test_config_yaml_overrides_and_errors(tmp_path):
    cfg = load_config(TINY, ["--optim.lr=1e-4", "--disc.mpd_periods=[2,5]", "--model.overrides.num_quantizers=4",
                             "--data.holdout_speakers", "[a, b]", "--steps=7"])
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.lr, float)  # "1e-4" is a string to YAML 1.1
    assert cfg.disc.mpd_periods == [2, 5] and cfg.model.overrides == {"num_quantizers": 4}
    assert cfg.data.holdout_speakers == ["a", "b"] and cfg.steps == 7 and cfg.model.preset == "tiny"
    assert parse_overrides(["--a.b-c=null"]) == {"a": {"b_c": None}}
    with pytest.raises(ConfigError, match="optim.lrr"):
        load_config(TINY, ["--optim.lrr=1"])
    with pytest.raises(ConfigError, match="steps='many'"):
        load_config(TINY, ["--steps=many"])
    with pytest.raises(ConfigError, match="objective='gan'"):
        load_config(None, ["--objective=gan"])
    with pytest.raises(ConfigError, match="no value"):
        load_config(None, ["--steps"])
    assert main(["--config", str(TINY), "--optim.lrr=1"]) == 2  # the CLI reports it, no traceback
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_lr_schedules():
    cos = dict(warmup_steps=4, schedule="cosine", min_lr_ratio=0.1)
    assert [lr_scale(s, 14, **cos) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_scale(4, 14, **cos) == pytest.approx(1.0) and lr_scale(13, 14, **cos) == pytest.approx(0.1)
    assert lr_scale(9, 14, **cos) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 5 / 9)))
    lin = dict(warmup_steps=2, schedule="linear", min_lr_ratio=0.0)
    assert lr_scale(2, 12, **lin) == 1.0 and lr_scale(11, 12, **lin) == 0.0
    assert lr_scale(5, 12, **lin) == pytest.approx(2 / 3)
    assert lr_scale(3, 100, schedule="exponential", gamma=0.9) == pytest.approx(0.9 ** 3)
    assert lr_scale(50, 100, schedule="constant") == 1.0


# ------------------------------------------------------------------ losses
@pytest.mark.parametrize("make", [lambda: MultiScaleSpectralLoss(SR), lambda: MelLoss(SR, 512, 128, 40),
                                  lambda: time_l1])
def test_reconstruction_losses_zero_on_equal_positive_and_differentiable(make):
    loss = make()
    target = _signal(0)
    assert float(loss(target, target.clone())) == 0.0
    pred = (target + 0.05 * _signal(1)).requires_grad_(True)
    value = loss(pred, target)
    assert value.ndim == 0 and value.item() > 0
    value.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_multi_scale_spectral_loss_uses_windows_that_fit_and_log_power_and_mel():
    loss = MultiScaleSpectralLoss(SR, windows=(32, 64, 4096))
    target = _signal(0, n=1000)
    assert float(loss(target * 2, target)) > 0  # 4096 > 1000 samples is skipped, not an error
    # A pure gain g changes every log power (and log mel) bin by 2 log g: L1 + L2 = 2 (|2 log g| + (2 log g)^2)
    one = MultiScaleSpectralLoss(SR, windows=(64,), eps=0.0)
    d = 2 * math.log(2.0)
    assert float(one(target * 2, target)) == pytest.approx(2 * (d + d * d), rel=1e-3)
    with pytest.raises(ConfigError, match="shorter than every window"):
        MultiScaleSpectralLoss(SR, windows=(2048,))(target[..., :100], target[..., :100])


def test_hinge_losses():
    ones, neg = [torch.ones(2, 5)], [-torch.ones(2, 5)]
    assert float(discriminator_hinge_loss(ones, neg)) == 0.0  # confident and right: no loss
    assert float(discriminator_hinge_loss(neg, ones)) == pytest.approx(4.0)
    assert float(generator_hinge_loss(ones)) == 0.0 and float(generator_hinge_loss(neg)) == pytest.approx(2.0)
    fake = torch.zeros(2, 5, requires_grad=True)
    generator_hinge_loss([fake]).backward()
    assert (fake.grad < 0).all()  # pushes D(fake) up


def test_feature_matching_plain_and_normalized():
    g = torch.Generator().manual_seed(0)
    real = [[torch.randn(2, 3, 8, generator=g) * 10, torch.randn(2, 4, generator=g) * 0.1]]
    fake = [[r + 0.5 * torch.randn(r.shape, generator=g) for r in real[0]]]
    assert float(feature_matching_loss(real, real)) == 0.0
    l1 = [(f - r).abs().mean() for f, r in zip(fake[0], real[0])]  # one discriminator: layers summed
    assert float(feature_matching_loss(real, fake)) == pytest.approx(float(sum(l1)))
    norm = [a / r.abs().mean() for a, r in zip(l1, real[0])]
    assert float(feature_matching_loss(real, fake, normalized=True)) == pytest.approx(float(sum(norm)))
    # the normalised variant ignores the scale of a layer's activations
    scaled_r, scaled_f = [[real[0][0] * 100, real[0][1]]], [[fake[0][0] * 100, fake[0][1]]]
    assert float(feature_matching_loss(scaled_r, scaled_f, True)) == pytest.approx(
        float(feature_matching_loss(real, fake, True)), rel=1e-5)
    leaf = fake[0][0].clone().requires_grad_(True)
    feature_matching_loss([real[0][:1]], [[leaf]]).backward()
    assert leaf.grad.abs().sum() > 0


def test_fft_resample_matches_a_sine_at_the_new_rate():
    t24, t16 = torch.arange(2400) / 24000, torch.arange(1600) / 16000  # 0.1 s: 50 whole periods of 500 Hz
    out = fft_resample(torch.sin(2 * math.pi * 500 * t24)[None], 24000, 16000)
    assert out.shape == (1, 1600) and torch.allclose(out[0], torch.sin(2 * math.pi * 500 * t16), atol=1e-4)


@pytest.mark.parametrize("kind", ["wavlm", "hubert"])
def test_perceptual_loss_from_local_tiny_model(tmp_path, kind):
    from transformers import HubertConfig, HubertModel, WavLMConfig, WavLMModel

    cfg_cls, model_cls = (WavLMConfig, WavLMModel) if kind == "wavlm" else (HubertConfig, HubertModel)
    torch.manual_seed(0)
    cfg = cfg_cls(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                  conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=8,
                  num_conv_pos_embedding_groups=2, num_buckets=8, max_bucket_distance=16)
    model_cls(cfg).save_pretrained(tmp_path / kind)
    loss = PerceptualFeatureLoss(str(tmp_path / kind), sampling_rate=24000, layers=[0, 2])
    loss.train()
    assert not loss.model.training and not any(p.requires_grad for p in loss.model.parameters())
    target = _signal(0, n=4800)
    assert float(loss(target, target.clone())) == 0.0
    pred = (target + 0.1 * _signal(3, n=4800)).requires_grad_(True)
    value = loss(pred, target)
    value.backward()
    assert value.item() > 0 and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.model.parameters())
    with pytest.raises(ConfigError, match="not a local model directory"):
        PerceptualFeatureLoss(str(tmp_path / "missing"), 16000)
    # wired through the config: an extra weighted term of the reconstruction loss
    recon = ReconstructionLoss(LossConfig(mel=0, multi_scale_spectral=0, perceptual=2.0,
                                          perceptual_model=str(tmp_path / kind)), 24000)
    total, terms = recon(pred.detach(), target)
    assert set(terms) == {"perceptual"} and float(total) == pytest.approx(2 * float(terms["perceptual"]), rel=1e-5)


def test_reconstruction_loss_weights_and_exponential_decay():
    cfg = LossConfig(mel=3.0, mel_n_fft=512, mel_hop_length=128, mel_n_mels=40, multi_scale_spectral=0.5,
                     time_l1=2.0, recon_decay=0.5, recon_decay_steps=10, recon_decay_floor=0.2)
    recon = ReconstructionLoss(cfg, SR)
    target, pred = _signal(0), _signal(1)
    total, terms = recon(pred, target, step=0)
    assert set(terms) == {"mel", "multi_scale_spectral", "time_l1"}
    expected = 3 * terms["mel"] + 0.5 * terms["multi_scale_spectral"] + 2 * terms["time_l1"]
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    assert float(recon(pred, target, step=10)[0]) == pytest.approx(0.5 * float(total), rel=1e-6)
    assert recon.recon_scale(1000) == 0.2  # floor


# ------------------------------------------------------------------ discriminators
@pytest.mark.parametrize("make,count", [
    (lambda: MultiPeriodDiscriminator((2, 3, 5, 7, 11), channels=2, max_channels=8), 5),
    (lambda: MultiResolutionDiscriminator(((128, 32, 128), (256, 64, 256)), channels=4), 2),
    (lambda: MultiScaleSTFTDiscriminator((64, 128, 256), channels=4), 3),
    (lambda: MultiScaleSTFTDiscriminator(STABLE_CODEC_FFT_SIZES[:3], channels=4, spec_scale_pow=0.5, hop_divisor=2,
                                         normalized=True), 3),
])
def test_discriminator_outputs_and_gradients(make, count):
    torch.manual_seed(0)
    disc = make()
    x = _signal(0, n=1601).requires_grad_(True)  # odd length: the period discriminators pad
    logits, features = disc(x)
    assert len(logits) == len(features) == count
    for lg, feats in zip(logits, features):
        assert lg.ndim == 2 and lg.shape[0] == 2 and len(feats) >= 5
        assert all(f.shape[0] == 2 for f in feats)
    generator_hinge_loss(logits).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in disc.parameters())
    # items are independent: the first item's logits do not depend on the second
    solo, _ = disc(x[:1].detach())
    assert all(torch.allclose(a[:1], b, atol=1e-5) for a, b in zip(logits, solo))


def test_stable_codec_stft_options():
    from training.codec.config import DiscConfig

    d = Discriminators(DiscConfig(mpd=False, mrd=False, mstft=True, mstft_inharmonic=True, mstft_spec_scale_pow=0.5,
                                  mstft_channels=2))
    sizes = [sub.n_fft for sub in d.parts["mstft"].discriminators]
    assert sizes == list(STABLE_CODEC_FFT_SIZES)
    assert all(sub.spec_scale_pow == 0.5 for sub in d.parts["mstft"].discriminators)
    logits, _ = d(_signal(0, n=4800))
    assert len(logits) == 8
    assert list(Discriminators(DiscConfig(mstft=True, mstft_channels=2, mpd_channels=2, mrd_channels=2)).parts) == \
        ["mpd", "mrd", "mstft"]


# ------------------------------------------------------------------ data
def test_data_speakers_holdout_determinism_and_loudness(wav_dir):
    assert filename_speaker("103-1240-0000.flac") == "103" and filename_speaker("a_b.wav") == "a"
    cfg = DataConfig(corpus="folder", root=str(wav_dir), speaker_from_filename=True, holdout_speakers=1,
                     segment_seconds=0.25, batch_size=6, gain_db=6.0, target_dbfs=-20.0, eval_items=2,
                     eval_seconds=0.3)
    data = CodecData(list_utterances(cfg), cfg, SR, seed=1, show_progress=False)
    assert data.train_speakers == ["11", "22", "33", "44"] and data.held_out_speakers == ["55"]
    assert all(it.audio.dtype == np.float32 for it in data.train_items)
    rms = [20 * np.log10(np.sqrt(np.mean(it.audio.astype(np.float64) ** 2))) for it in data.train_items]
    assert np.allclose(rms, -20.0, atol=1e-3)
    audio, lengths = data.batch(5, 0, 0)
    assert audio.shape == (6, 1, 4000) and lengths.tolist() == [4000] * 6
    assert torch.equal(audio, data.batch(5, 0, 0)[0])  # a function of (seed, step, micro, rank)
    assert not torch.equal(audio, data.batch(6, 0, 0)[0])
    assert not torch.equal(audio, data.batch(5, 1, 0)[0]) and not torch.equal(audio, data.batch(5, 0, 1)[0])
    crop_db = 20 * torch.log10(audio.square().mean(-1).sqrt()).flatten()
    assert (crop_db > -20 - 6.5).all() and (crop_db < -20 + 6.5).all()  # steady tones: crop RMS = gain
    assert float(audio.abs().max()) <= 0.99
    clips = data.eval_clips()
    assert [c[0] for c in clips] == ["55-100-0000"] and clips[0][1].shape == (800,)  # short: as is
    # held-out speaker given by name; the short clip is then trained on: zero-padded with its true length
    named = make_data(DataConfig(corpus="folder", root=str(wav_dir), speaker_from_filename=True,
                                 holdout_speakers=["11"], segment_seconds=0.25, batch_size=64), SR, 0, False)
    assert "11" not in named.train_speakers and "55" in named.train_speakers
    _, lengths = named.batch(0)
    assert 800 in lengths.tolist() and (lengths <= 4000).all()
    lazy = make_data(DataConfig(corpus="folder", root=str(wav_dir), speaker_from_filename=True, preload=False,
                                segment_seconds=0.25, batch_size=6), SR, 0, False)
    eager = make_data(DataConfig(corpus="folder", root=str(wav_dir), speaker_from_filename=True,
                                 segment_seconds=0.25, batch_size=6), SR, 0, False)
    assert torch.equal(lazy.batch(3)[0], eager.batch(3)[0])
    with pytest.raises(ConfigError, match="unknown speaker"):
        make_data(DataConfig(corpus="folder", root=str(wav_dir), speaker_from_filename=True,
                             holdout_speakers=["99"]), SR)
    with pytest.raises(ConfigError, match="data:"):
        make_data(DataConfig(corpus="folder", root=str(wav_dir / "nope")), SR)


def test_speed_perturbation_changes_tempo_and_pitch(wav_dir):
    from training.codec.data import speed_perturb

    t = np.arange(SR) / SR
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    for factor in (0.9, 1.1):
        out = speed_perturb(tone, factor, 10 * SR)
        assert abs(len(out) - SR / factor) <= 1 and out.dtype == np.float32
        peak_hz = np.argmax(np.abs(np.fft.rfft(out))) * SR / len(out)
        assert abs(peak_hz - 440 * factor) < 3  # pitch moves with the speed
    assert np.array_equal(speed_perturb(tone, 1.0, 100), tone[:100])
    cfg = DataConfig(corpus="folder", root=str(wav_dir), speaker_from_filename=True, segment_seconds=0.25,
                     batch_size=16, speed_factors=[0.9, 1.0, 1.1])
    data = make_data(cfg, SR, 0, False)
    audio, lengths = data.batch(2)
    assert audio.shape == (16, 1, 4000) and torch.equal(audio, data.batch(2)[0])
    with pytest.raises(ConfigError, match="speed_factors: 0.95"):
        make_data(DataConfig(corpus="folder", root=str(wav_dir), speed_factors=[0.95]), SR, 0, False)


# ------------------------------------------------------------------ end to end
def test_build_model_from_preset_or_saved_directory(tmp_path):
    from training.codec.config import ModelConfig
    from training.codec.loop import build_model

    model = build_model(ModelConfig(codec="language-codec", preset="tiny", overrides={"codebook_size": 32}), seed=3)
    assert model.config.codebook_size == 32 and model.config.model_type == "language_codec"
    again = build_model(ModelConfig(codec="language_codec", preset="tiny", overrides={"codebook_size": 32}), seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    model.save_pretrained(tmp_path / "saved")
    loaded = build_model(ModelConfig(init_from=str(tmp_path / "saved")), seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(ConfigError, match="unknown codec"):
        build_model(ModelConfig(codec="no-such-codec"), seed=0)


def test_cli_tiny_run_exports_a_loadable_codec(wav_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_cli_args(wav_dir, out, "--steps=4", "--disc_start_step=2", "--optim.grad_accum_steps=2",
                          "--eval_every=2", "--export_every=2", "--save_every=2", "--log_with=tensorboard")) == 0
    printed = capsys.readouterr().out
    assert "trained steps 0..4 of 4" in printed and str(out / "final") in printed
    history = _history(out)
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    assert "loss/discriminator" not in history[1] and "loss/discriminator" in history[2]  # GAN from step 2
    assert {"loss/mel", "loss/multi_scale_spectral", "loss/commit", "lr", "grad_norm/generator",
            "codebook/usage/0"} <= set(history[0])
    assert {"loss/adversarial", "loss/feature_matching", "grad_norm/discriminator"} <= set(history[3])
    assert [(e["step"], sorted(e)) for e in _history(out, "eval/stoi")] == [
        (s, ["eval/collapsed", "eval/mel_distance", "eval/mel_distance_no_input", "eval/stoi", "step"]) for s in (2, 4)]
    assert list(out.glob("codec/events.out.tfevents.*"))
    assert sorted(p.name for p in (out / "state").iterdir()) == ["step-2", "step-4"]
    tok = AutoCodecTokenizer.from_pretrained(out / "final")
    assert (out / "export" / "step-2" / "model.safetensors").is_file()
    enc = tok(np.random.default_rng(0).standard_normal(1600).astype(np.float32) * 0.1, sampling_rate=SR)
    assert enc.codes.shape[:2] == (1, tok.num_quantizers)
    # the export carries the trained weights, not the initial ones
    trained = dict(tok.model.state_dict())
    fresh = AutoCodecTokenizer.from_config(tok.config, seed=0).model.state_dict()
    assert any(not torch.equal(trained[k], fresh[k]) for k in fresh if fresh[k].is_floating_point())


def test_freeze_encoder_and_quantizer_trains_the_decoder_and_keeps_the_tokens(wav_dir, tmp_path, capsys):
    """model.freeze=[encoder, quantizer] on a warm start: the decoder moves, the tokens stay exactly those of
    the starting checkpoint (no gradient, no EMA codebook update, no dead-code reset, also across an
    evaluation), and the optimizer holds only the decoder."""
    from training.codec.loop import freeze_modules, optimizer_groups, training_mode

    start = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("language_codec", preset="tiny"), seed=0)
    start.save_pretrained(tmp_path / "start")
    out = tmp_path / "decoder"
    assert main(_cli_args(wav_dir, out, "--steps=4", "--disc_start_step=2", "--eval_every=2", "--save_every=1000",
                          "--export_every=1000", "--optim.lr=1e-2", f"--model.init_from={tmp_path / 'start'}",
                          "--model.freeze=[encoder, quantizer]")) == 0
    final = AutoCodecTokenizer.from_pretrained(out / "final")
    before, after = start.model.state_dict(), final.model.state_dict()
    for name in before:  # EMA codebooks and usage counters included
        assert torch.equal(before[name], after[name]) == name.startswith(("encoder.", "quantizer.")), name
    audio = np.random.default_rng(1).standard_normal(8000).astype(np.float32) * 0.1
    assert torch.equal(start(audio, sampling_rate=SR).codes, final(audio, sampling_rate=SR).codes)
    # the export says so: same tokens digest, and the start's weights digest as a predecessor (tokenizer.identity)
    assert final.tokens_digest == start.tokens_digest and final.weights_digest != start.weights_digest
    assert final.config.same_tokens_as == [start.weights_digest] and final.config_hash == start.config_hash

    model = AutoCodecTokenizer.from_pretrained(tmp_path / "start").model
    frozen = freeze_modules(model, ["encoder", "quantizer"])
    training_mode(model, frozen)
    assert model.backbone.training and not model.encoder.training and not model.quantizer.training
    trained = {id(p) for g in optimizer_groups(model, 1.0) for p in g["params"]}
    assert trained == {id(p) for n, p in model.named_parameters() if n.startswith(("backbone.", "head."))}
    with pytest.raises(ConfigError, match="leaves no parameter"):
        freeze_modules(model, [name for name, _ in model.named_children()])
    assert main(_cli_args(wav_dir, tmp_path / "bad", "--steps=1", "--model.freeze=[decoder]")) == 2
    assert "'decoder' is not a submodule of LanguageCodecModel" in capsys.readouterr().err


def test_same_tokens_as_is_dropped_when_a_token_module_trains(wav_dir, tmp_path):
    """F6 (tts-adversarial-3): a warm start that trains the encoder or the quantizer makes other tokens, so
    its export must not inherit the start's `same_tokens_as` (nor add the start): only a run with every token
    module frozen keeps the lineage and adds the start's weights digest."""
    from training.codec.loop import record_same_tokens

    start = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("language_codec", preset="tiny"), seed=0)
    start.config.same_tokens_as = ["0123456789abcdef"]  # as the shipped v2 declares v1
    start.save_pretrained(tmp_path / "start")
    out = tmp_path / "ft"
    assert main(_cli_args(wav_dir, out, "--steps=1", "--eval_every=1000", "--save_every=1000",
                          "--export_every=1000", f"--model.init_from={tmp_path / 'start'}")) == 0
    final = AutoCodecTokenizer.from_pretrained(out / "final")
    assert final.tokens_digest != start.tokens_digest and not final.config.same_tokens_as
    for frozen, expected in ((["encoder"], []), (["quantizer"], []), ([], []),
                             (["encoder", "quantizer"], ["0123456789abcdef", start.weights_digest])):
        model = AutoCodecTokenizer.from_pretrained(tmp_path / "start").model
        record_same_tokens(model, frozen)
        assert list(model.config.same_tokens_as or []) == expected, frozen


def test_tiny_codec_loss_falls(wav_dir, tmp_path):
    """Overfitting one clip (no random gain, no GAN): the mel loss falls. A low dead-code threshold keeps
    the tiny batches from re-initialising codes every step, which makes the curve jumpy."""
    one = tmp_path / "one"
    one.mkdir()
    (one / "11-100-0000.wav").write_bytes((wav_dir / "11-100-0000.wav").read_bytes())
    out = tmp_path / "overfit"
    assert main(_cli_args(one, out, "--steps=40", "--disc.mpd=false", "--disc.mrd=false", "--optim.lr=3e-3",
                          "--optim.warmup_steps=0", "--optim.schedule=constant", "--eval_every=1000",
                          "--save_every=1000", "--export_every=1000", "--data.segment_seconds=0.2",
                          "--data.gain_db=0", "--data.holdout_speakers=0",
                          "--model.overrides.dead_code_threshold=0.1")) == 0
    mel = [h["loss/mel"] for h in _history(out)]
    assert np.mean(mel[-3:]) < 0.8 * mel[0], mel


def test_resume_reproduces_uninterrupted_losses(wav_dir, tmp_path, capsys):
    common = ["--steps=6", "--disc_start_step=2", "--eval_every=1000", "--save_every=1000", "--export_every=1000"]
    assert main(_cli_args(wav_dir, tmp_path / "full", *common)) == 0
    assert main(_cli_args(wav_dir, tmp_path / "split", *common, "--stop_at=3")) == 0
    assert not (tmp_path / "split" / "final").exists() and (tmp_path / "split" / "state" / "step-3").is_dir()
    assert main(_cli_args(wav_dir, tmp_path / "split", *common, "--resume")) == 0
    full, split = _history(tmp_path / "full"), _history(tmp_path / "split")
    assert [h["step"] for h in split] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(full[3:], split[3:]):
        for key in ("loss/total", "loss/mel", "loss/multi_scale_spectral", "loss/adversarial", "loss/discriminator"):
            assert a[key] == pytest.approx(b[key], abs=1e-5, rel=1e-5), (a["step"], key)
    with pytest.raises(ConfigError, match="no saved state"):
        train(load_config(TINY, [f"--data.root={wav_dir}", f"--out_dir={tmp_path / 'empty'}", "--resume=latest",
                                 "--log_with=none"]))
    # F13 (tts-adversarial-3): a state that does not fit the configured model is one line, not torch's traceback
    capsys.readouterr()
    assert main(_cli_args(wav_dir, tmp_path / "split", "--steps=8", "--disc_start_step=2", "--resume",
                          "--model.overrides.hidden_size=48")) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line or "Traceback" in line]
    assert len(err) == 1 and "the saved state does not fit the model now configured" in err[0], err


def test_max_minutes_stops_saves_exports_and_resumes(wav_dir, tmp_path, capsys):
    """A time-boxed run (max_minutes) stops after the step that passes the deadline, saves its state and
    exports the model; --resume then finishes the schedule."""
    common = ["--steps=4", "--eval_every=1000", "--save_every=1000", "--export_every=1000"]
    out = tmp_path / "boxed"
    assert main(_cli_args(wav_dir, out, *common, "--max_minutes=1e-9")) == 0
    assert [h["step"] for h in _history(out)] == [1]
    assert (out / "state" / "step-1").is_dir() and (out / "final" / "model.safetensors").is_file()
    assert main(_cli_args(wav_dir, out, *common, "--resume")) == 0
    assert [h["step"] for h in _history(out)] == [1, 2, 3, 4] and (out / "state" / "step-4").is_dir()
    capsys.readouterr()
    assert main(_cli_args(wav_dir, tmp_path / "bad", *common, "--max_minutes=0")) == 2
    assert "max_minutes=0" in capsys.readouterr().err


class _FakeRateModel(nn.Module):
    """A conv autoencoder with a differentiable rate proxy: rate_loss in bits per audio sample."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(sampling_rate=SR)
        self.enc, self.dec = nn.Conv1d(1, 4, 8, 4, padding=2), nn.ConvTranspose1d(4, 1, 8, 4, padding=2)

    def forward(self, input_values, lengths=None):
        z = self.enc(input_values)
        z_hat = z + (torch.round(z) - z).detach()
        bits = torch.log2(1 + z.abs()).sum(dim=(1, 2))
        return CodecModelOutput(audio=self.dec(z_hat), commit_loss=torch.zeros(()),
                                rate_loss=bits.mean() / input_values.shape[-1], bits=bits)


def test_rate_distortion_objective(wav_dir, tmp_path):
    cfg = load_config(TINY, [f"--data.root={wav_dir}", f"--out_dir={tmp_path / 'rd'}", "--log_with=none",
                             "--objective=rate_distortion", "--lambda_rd=0.5", "--steps=3", "--disc.mpd=false",
                             "--disc.mrd=false", "--eval_every=3", "--loss.time_l1=1.0"])
    result = train(cfg, model=_FakeRateModel())
    assert result.export_dir is None  # nothing to save_pretrained
    for h in result.history:
        distortion = 15 * h["loss/mel"] + h["loss/multi_scale_spectral"] + h["loss/time_l1"]
        assert h["loss/total"] == pytest.approx(h["loss/rate"] + 0.5 * distortion, rel=1e-5)
        assert h["rate/bps_est"] == pytest.approx(h["loss/rate"] * SR) and h["rate/bits_est"] > 0
    assert {"eval/mel_distance", "eval/stoi"} <= set(result.last_logs)
    cfg.resume, cfg.out_dir = "", str(tmp_path / "rd2")

    class NoRate(_FakeRateModel):
        def forward(self, input_values, lengths=None):
            out = super().forward(input_values)
            out.rate_loss = None
            return out

    with pytest.raises(ConfigError, match="rate_loss"):
        train(cfg, model=NoRate())


def test_rate_distortion_lambda_comes_from_the_model_config(wav_dir, tmp_path):
    """lambda_rd unset: the Rate-Aware config's rd_lambda weighs D; set: it replaces rd_lambda, and the
    exported checkpoint records the lambda it was trained with."""
    common = [f"--data.root={wav_dir}", "--log_with=none", "--objective=rate_distortion", "--steps=2",
              "--disc.mpd=false", "--disc.mrd=false", "--eval_every=2", "--loss.mel=0", "--loss.time_l1=1.0",
              "--model.codec=rate_aware", "--model.preset=tiny", "--model.overrides.rd_lambda=3.0"]
    for extra, expected in (([], 3.0), (["--lambda_rd=0.25"], 0.25)):
        result = train(load_config(TINY, [*common, f"--out_dir={tmp_path / str(expected)}", *extra]))
        for h in result.history:
            distortion = h["loss/multi_scale_spectral"] + h["loss/time_l1"]
            assert h["loss/total"] == pytest.approx(h["loss/rate"] + expected * distortion, rel=1e-5)
        assert result.last_logs["eval/bps_coded"] > 0  # what its streams would cost on the held-out clips
        assert AutoCodecTokenizer.from_pretrained(result.export_dir).model.config.rd_lambda == expected
    with pytest.raises(ConfigError, match="lambda_rd"):
        load_config(TINY, ["--lambda_rd=0"])


def test_two_process_training_with_torchrun(wav_dir, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "training.codec.cli",
           *_cli_args(wav_dir, out, "--steps=4", "--disc_start_step=1", "--optim.grad_accum_steps=2",
                      "--eval_every=1000", "--save_every=2")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained steps 0..4") == 1  # the summary comes from rank 0 only
    assert {p.name for p in (out / "state" / "step-4").glob("random_states_*.pkl")} == {
        "random_states_0.pkl", "random_states_1.pkl"}
    assert [h["step"] for h in _history(out)] == [1, 2, 3, 4]
    AutoCodecTokenizer.from_pretrained(out / "final")


def test_data_skips_unreadable_and_empty_files(wav_dir, tmp_path):
    import shutil

    root = tmp_path / "mixed"
    shutil.copytree(wav_dir, root)
    (root / "66-100-0000.wav").write_bytes(b"RIFF\x00\x00not audio")
    sf.write(root / "77-100-0000.wav", np.zeros(0, np.float32), 16000)
    cfg = DataConfig(corpus="folder", root=str(root), speaker_from_filename=True, holdout_speakers=["55"],
                     segment_seconds=0.25, batch_size=4)
    for preload in (True, False):
        cfg.preload = preload
        data = CodecData(list_utterances(cfg), cfg, SR, seed=0, show_progress=False)
        assert sorted(p.split("/")[-1] for p, _ in data.skipped) == ["66-100-0000.wav", "77-100-0000.wav"]
        assert all("66-100-0000" in why or "77-100-0000" in why for _, why in data.skipped)
        assert len(data.train_items) == 8
        assert data.batch(0)[0].shape == (4, 1, int(0.25 * SR))
