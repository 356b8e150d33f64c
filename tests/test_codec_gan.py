"""The codec trainer's GAN and loss recipes against the papers and official code (training audit sections
4, 5, 7): Stable Codec's MS-STFT weighting, linear STFT L1 and normalised perceptual loss; Language-Codec's
per-family GAN aggregation and multi-scale discriminator; resuming a state saved without the MSD."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from tokenizer import ConfigError
from training.codec import list_utterances, load_config, train
from training.codec.cli import main
from training.codec.config import DiscConfig, LossConfig
from training.codec.discriminators import (STABLE_CODEC_FFT_SIZES, Discriminators, MultiScaleDiscriminator,
                                           STFTDiscriminator, scale_spectrum)
from training.codec.losses import (PerceptualFeatureLoss, ReconstructionLoss, discriminator_hinge_loss,
                                   feature_matching_loss, generator_hinge_loss, stft_l1)

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "codec"
SR = 16000


def _audio(batch=2, n=3200, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / SR
    tone = 0.3 * torch.sin(2 * math.pi * (220 + 110 * torch.arange(batch))[:, None] * t)
    return (tone + 0.05 * torch.randn(batch, n, generator=g))[:, None, :]


# ------------------------------------------------------------------ Stable Codec discriminator (item 7)
def test_power_law_weights_quiet_bins_lower():
    """App. B.5.1: X |X|^0.5 puts |X| = 0.01 at 1e-3 of |X| = 1 (the old compression gave 0.1)."""
    phase = torch.tensor([0.3, -2.0])
    spec = torch.polar(torch.tensor([0.01, 1.0]), phase)
    out = scale_spectrum(spec, 0.5)
    assert float(out.abs()[0] / out.abs()[1]) == pytest.approx(1e-3, rel=1e-3)
    assert torch.allclose(out.angle(), phase)
    assert scale_spectrum(spec, 0.0) is spec


def test_stable_codec_stft_discriminator_sees_the_papers_spectrogram():
    d = Discriminators(DiscConfig(mpd=False, mrd=False, mstft=True, mstft_inharmonic=True, mstft_hop_divisor=2,
                                  mstft_normalized=True, mstft_spec_scale_pow=0.5, mstft_channels=2))
    subs = list(d.parts["mstft"].discriminators)
    assert [s.n_fft for s in subs] == list(STABLE_CODEC_FFT_SIZES)
    assert [s.hop_length for s in subs] == [n // 2 for n in STABLE_CODEC_FFT_SIZES]
    x = _audio(1, 4800)
    sub = subs[2]
    raw = torch.stft(x[:, 0], sub.n_fft, sub.n_fft // 2, window=torch.hann_window(sub.n_fft), normalized=True,
                     return_complex=True)
    assert torch.allclose(sub.spectrogram(x), raw * (raw.abs() + 1e-6) ** 0.5, atol=1e-6)
    logits, _ = d(x)
    assert len(logits) == 8 and d.groups == [8]
    # EnCodec's defaults are unchanged: hop n_fft / 4, no normalisation, no weighting
    plain = STFTDiscriminator(256, channels=2)
    assert (plain.hop_length, plain.normalized, plain.spec_scale_pow) == (64, False, 0.0)


def test_the_inverted_compression_option_is_refused_with_the_replacement():
    assert load_config(None, ["--disc.mstft_compress=1.0"]).disc.mstft_spec_scale_pow == 0.0  # old configs load
    with pytest.raises(ConfigError, match="mstft_spec_scale_pow=0.5"):
        load_config(None, ["--disc.mstft_compress=0.5"])


# ------------------------------------------------------------------ Stable Codec losses (item 8)
def test_linear_stft_l1_equals_a_hand_computation():
    n_fft, hop = 8, 4
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(1, 1, 20, generator=g), torch.randn(1, 1, 20, generator=g)

    def magnitudes(x):  # centred frames (reflect padding), periodic Hann window, |rfft|
        x = np.pad(x.numpy().ravel().astype(np.float64), n_fft // 2, mode="reflect")
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
        frames = [x[i:i + n_fft] * window for i in range(0, len(x) - n_fft + 1, hop)]
        return np.abs(np.fft.rfft(np.stack(frames), axis=-1))

    expected = np.abs(magnitudes(pred) - magnitudes(target)).mean()
    assert float(stft_l1(pred, target, n_fft, hop)) == pytest.approx(expected, rel=1e-5)
    recon = ReconstructionLoss(LossConfig(mel=0, multi_scale_spectral=0, stft_l1=3.0, stft_l1_n_fft=n_fft,
                                          stft_l1_hop_length=hop), SR)
    total, terms = recon(pred, target)
    assert set(terms) == {"stft_l1"} and float(total) == pytest.approx(3 * expected, rel=1e-5)
    # linear magnitudes: the same signals 60 dB quieter cost 1000x less (a log-spectral loss would not change)
    quiet = stft_l1(1e-3 * pred, 1e-3 * target, n_fft, hop)
    assert float(quiet) == pytest.approx(1e-3 * expected, rel=1e-4)


@pytest.fixture(scope="module")
def tiny_wavlm(tmp_path_factory):
    from transformers import WavLMConfig, WavLMModel

    torch.manual_seed(0)
    cfg = WavLMConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                      conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=8,
                      num_conv_pos_embedding_groups=2, num_buckets=8, max_bucket_distance=16)
    path = tmp_path_factory.mktemp("wavlm") / "wavlm"
    WavLMModel(cfg).save_pretrained(path)
    return path


def test_perceptual_loss_is_normalised_per_layer(tiny_wavlm):
    """Eq. 9: scaling one layer's features (as a layer with large activations would) leaves the loss alone."""
    target, pred = _audio(2, 4800, 0), _audio(2, 4800, 1)
    for normalized in (True, False):
        loss = PerceptualFeatureLoss(str(tiny_wavlm), SR, layers=[0, 2], normalized=normalized)
        base = float(loss(pred, target))
        features = loss.features
        loss.features = lambda audio: [h * 100 if i == 0 else h for i, h in enumerate(features(audio))]
        scaled = float(loss(pred, target))
        if normalized:
            assert scaled == pytest.approx(base, rel=1e-4)
            real = [h.detach() for h in features(target)]
            fake = [h.detach() for h in features(pred)]
            assert base == pytest.approx(float(np.mean([float((f - r).abs().mean() / r.abs().mean())
                                                        for f, r in zip(fake, real)])), rel=1e-5)
        else:
            assert scaled > 10 * base
    assert LossConfig().perceptual_normalized  # the paper's form is the default


# ------------------------------------------------------------------ Language-Codec GAN (item 10)
def _official_generator_terms(families):
    """Vocos / official Language-Codec experiment.py, written out: per family GeneratorLoss (sum over
    sub-discriminators of mean relu(1 - D(fake))) / len, FeatureMatchingLoss (sum over sub-discriminators
    and layers of mean |r - g|) / len(fmap_rs); families summed with mrd_loss_coeff 1."""
    adv = fm = 0.0
    for logits, reals, fakes in families:
        adv += sum(torch.mean(torch.clamp(1 - dg, min=0)) for dg in logits) / len(logits)
        fm += sum(torch.mean(torch.abs(rl - gl)) for dr, dg in zip(reals, fakes) for rl, gl in zip(dr, dg)) / len(reals)
    return float(adv), float(fm)


def test_gan_aggregation_matches_the_official_code():
    torch.manual_seed(0)
    disc = Discriminators(DiscConfig(mpd_periods=[2, 3], mpd_channels=2, mpd_max_channels=8,
                                     mrd_resolutions=[[128, 32, 128], [256, 64, 256]], mrd_channels=2,
                                     msd=True, msd_channels=2, msd_max_channels=8)).eval()  # fixed spectral norm
    real, fake = _audio(2, 1600, 0), _audio(2, 1600, 1)
    with torch.no_grad():
        _, real_feats = disc(real)
        fake_logits, fake_feats = disc(fake)
        assert disc.groups == [2, 2, 3]
        families = []
        for part in disc.parts.values():  # each family alone, as the official code calls them
            lg, ft = part(fake)
            _, rf = part(real)
            families.append((lg, rf, ft))
        adv, fm = _official_generator_terms(families)
        ours_adv = generator_hinge_loss(fake_logits, disc.groups)
        ours_fm = feature_matching_loss(real_feats, fake_feats, groups=disc.groups)
        assert float(ours_adv) == pytest.approx(adv, rel=1e-6) and float(ours_fm) == pytest.approx(fm, rel=1e-6)
        # the old rule (mean over everything) is far weaker: 1/3 and ~1/20 of these with 3 families
        old_adv = generator_hinge_loss(fake_logits, reduction="mean")
        old_fm = feature_matching_loss(real_feats, fake_feats, reduction="mean")
        assert float(old_adv) == pytest.approx(float(torch.stack([F.relu(1 - f).mean() for f in fake_logits]).mean()))
        assert fm / float(old_fm) > 10 and adv / float(old_adv) > 2
        # HiFi-GAN: plain sums
        hifi = sum(float((r - f).abs().mean()) for rs, fs in zip(real_feats, fake_feats) for r, f in zip(rs, fs))
        assert float(feature_matching_loss(real_feats, fake_feats, reduction="sum")) == pytest.approx(hifi, rel=1e-6)
        # the discriminator's hinge loss follows the same rule
        real_logits, _ = disc(real)
        d_official = sum(sum(float(F.relu(1 - r).mean() + F.relu(1 + f).mean()) for r, f in zip(rl, fl)) / len(rl)
                         for rl, fl in zip(*[[lg[a:b] for a, b in ((0, 2), (2, 4), (4, 7))]
                                              for lg in (real_logits, fake_logits)]))
        assert float(discriminator_hinge_loss(real_logits, fake_logits, disc.groups)) == pytest.approx(d_official,
                                                                                                        rel=1e-6)
    with pytest.raises(ConfigError, match="gan_reduction"):
        load_config(None, ["--loss.gan_reduction=average"])


def test_multi_scale_discriminator_scales_and_independence():
    torch.manual_seed(0)
    msd = MultiScaleDiscriminator(scales=3, channels=4, max_channels=16)
    x = _audio(2, 1601).requires_grad_(True)
    logits, features = msd(x)
    assert len(logits) == len(features) == 3 and all(len(f) == 8 for f in features)
    # the first layer keeps the length: the input of scale i has ~T / 2^i samples
    lengths = [f[0].shape[-1] for f in features]
    assert lengths[0] == 1601 and abs(lengths[1] - 1601 / 2) <= 2 and abs(lengths[2] - 1601 / 4) <= 2
    assert hasattr(msd.discriminators[0].layers[0].parametrizations.weight[0], "_u")  # spectral norm at 1x
    generator_hinge_loss(logits).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    msd.eval()  # (spectral norm's power iteration only runs in train mode)
    both, _ = msd(x.detach())
    solo, _ = msd(x[:1].detach())
    assert all(torch.allclose(a[:1], b, atol=1e-5) for a, b in zip(both, solo))


@pytest.mark.parametrize("name", ["language_codec_tiny", "language_codec_small_16k", "language_codec_default_16k"])
def test_language_codec_configs_use_the_official_recipe(name):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert cfg.disc.msd and cfg.disc.mpd and cfg.disc.mrd and cfg.disc.msd_scales == 3
    assert (cfg.loss.gan_reduction, cfg.loss.adversarial, cfg.loss.feature_matching, cfg.loss.commit) == \
        ("per_family", 1.0, 1.0, 1.0)


@pytest.mark.parametrize("stage", [1, 2])
def test_stable_codec_stage_configs(stage):
    cfg = load_config(CONFIGS / f"stable_codec_small_stage{stage}.yaml")
    d = cfg.disc
    assert (d.mpd, d.mrd, d.msd, d.mstft, d.mstft_inharmonic, d.mstft_hop_divisor, d.mstft_normalized,
            d.mstft_spec_scale_pow) == (False, False, False, True, True, 2, True, 0.5)
    loss = cfg.loss
    assert loss.mel == loss.multi_scale_spectral == 0 and loss.feature_matching_normalized
    # paper §3.4: feature matching only (no direct adversarial term), Eq. 7's mean; §4.2: lr 8e-4, wd 0.01
    assert loss.adversarial == 0 and loss.feature_matching == 1 and loss.gan_reduction == "mean"
    assert cfg.optim.lr == 8e-4 and cfg.optim.disc_lr is None and cfg.optim.weight_decay == 0.01
    if stage == 1:
        assert (loss.time_l1, loss.stft_l1, loss.stft_l1_n_fft, loss.stft_l1_hop_length) == (1.0, 1.0, 2048, 512)
        assert loss.recon_decay < 1 and loss.recon_decay_steps == 1 and loss.perceptual == 0
    else:
        assert loss.time_l1 == loss.stft_l1 == 0 and loss.perceptual > 0 and loss.perceptual_normalized
        assert cfg.model.init_from == "runs/stable_codec_small_stage1/final"


def test_stable_codec_feature_matching_is_eq7_mean_over_discriminators_and_maps():
    """Eq. 7: 1/(MN) sum_m sum_n ||D_mn(x) - D_mn(x^)||_1 / mean(|D_mn(x)|), M discriminators x N maps, with the
    MS-STFT discriminators the stage configs build (fails with the former `sum` reduction: 48x larger)."""
    cfg = load_config(CONFIGS / "stable_codec_small_stage1.yaml", ["--disc.mstft_channels=2"])
    disc = Discriminators(cfg.disc)
    torch.manual_seed(0)
    real, fake = 0.1 * torch.randn(1, 1, 4000), 0.1 * torch.randn(1, 1, 4000)
    (_, real_feats), (_, fake_feats) = disc(real), disc(fake)
    terms = [(f - r).abs().mean() / r.abs().mean() for rs, fs in zip(real_feats, fake_feats) for r, f in zip(rs, fs)]
    M, N = len(real_feats), len(real_feats[0])
    assert M == 8 and len(terms) == M * N
    loss = feature_matching_loss(real_feats, fake_feats, cfg.loss.feature_matching_normalized, disc.groups,
                                 cfg.loss.gan_reduction)
    assert torch.allclose(loss, torch.stack(terms).sum() / (M * N), rtol=1e-5)


# ------------------------------------------------------------------ resuming across the MSD change
def test_resuming_a_state_without_the_msd_says_how(tmp_path):
    rng = np.random.default_rng(0)
    for spk in (11, 22):
        sf.write(tmp_path / f"{spk}-100-0000.wav", (0.1 * rng.standard_normal(4800)).astype(np.float32), SR)
    out = tmp_path / "run"
    common = ["--config", str(CONFIGS / "language_codec_tiny.yaml"), f"--data.root={tmp_path}", f"--out_dir={out}",
              "--log_with=none", "--steps=3", "--disc_start_step=0", "--data.holdout_speakers=0",
              "--eval_every=1000", "--export_every=1000", "--save_every=2"]
    assert main([*common, "--disc.msd=false", "--stop_at=2"]) == 0
    with pytest.raises(ConfigError, match=r"--disc.msd=false"):
        cfg = load_config(CONFIGS / "language_codec_tiny.yaml", common[2:] + ["--resume=latest"])
        train(cfg, list_utterances(cfg.data))
    assert main([*common, "--disc.msd=false", "--resume"]) == 0  # with the saved set it continues
