"""Rate-Aware codec: RWKV forms, entropy tables, exact bitstream round trips, stream integrity, slice
causality, rate-distortion training, save/load."""

import json
import math

import numpy as np
import pytest
import torch

from tokenizer import AutoCodecConfig, AutoCodecTokenizer, CodecError, ConfigError
from tokenizer.codecs.rate_aware import PAPER_LAMBDAS, RateAwareConfig, RateAwareModel, RateAwareTokenizer
from tokenizer.codecs.rate_aware.bitstream import BitstreamError, pack_stream, unpack_stream
from tokenizer.codecs.rate_aware.entropy import (PRECISION, FactorizedPrior, ScaleTable, gaussian_likelihood,
                                                 quantize_pmf)
from tokenizer.model_outputs import CodecModelOutput
from tokenizer.codecs.rate_aware.crm import CRMBlock
from tokenizer.modules.spectral import istft_same, stft_same
from tokenizer.codecs.rate_aware.rwkv import RWKVBlock, wkv_chunked, wkv_recurrent
from training.codec.config import LossConfig
from training.codec.losses import ReconstructionLoss, rate_distortion_loss

SR = 16000


def speech_like(seconds, seed=0, f0=180.0):
    """A gliding harmonic tone with noise: enough structure to give varied latents."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * f0 * (t + 0.4 * t**2)
    x = sum(0.3 / k * np.sin(k * phase) for k in range(1, 5)) + 0.03 * rng.standard_normal(t.shape)
    return (x * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)


def spread(tok):
    """Widen an untrained tiny model's latents (std ~2 from the latent gains) so the coding tests exercise
    more of the alphabet and its tails, as a trained high-rate model would."""
    with torch.no_grad():
        tok.model.analysis.out.conv.parametrizations.weight.original0.mul_(4)
        tok.model.hyper_analysis.out.conv.parametrizations.weight.original0.mul_(2)
    return tok


@pytest.fixture(scope="module")
def tok():
    return spread(AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("rate-aware", preset="tiny")))


# ------------------------------------------------------------------ building blocks
def test_rwkv_chunked_equals_recurrent():
    torch.manual_seed(0)
    B, T, C = 2, 75, 6
    w, u = -torch.exp(torch.randn(C) * 2), torch.randn(C)
    k, v = torch.randn(B, T, C) * 4, torch.randn(B, T, C)
    ref, ref_state = wkv_recurrent(w, u, k, v)
    for chunk in (1, 7, 32, 100):
        out, state = wkv_chunked(w, u, k, v, chunk_size=chunk)
        assert torch.allclose(out, ref, atol=1e-5, rtol=1e-5), chunk
        assert torch.allclose(state.p, ref_state.p, atol=1e-4)
        assert torch.allclose(state.a * torch.exp(state.p - ref_state.p), ref_state.a, rtol=1e-4, atol=1e-5)

    block = RWKVBlock(C, chunk_size=8)
    x = torch.randn(B, T, C)
    full, _ = block(x)
    rec, _ = block(x, recurrent=True)
    assert torch.allclose(full, rec, atol=1e-5)
    # streaming: frame by frame with the carried state equals the whole sequence at once
    state, frames = None, []
    for t in range(T):
        y, state = block(x[:, t : t + 1], state, recurrent=True)
        frames.append(y)
    assert torch.allclose(torch.cat(frames, 1), full, atol=1e-5)
    # unidirectional: the future never changes the past
    x2 = x.clone()
    x2[:, 40:] = torch.randn(B, T - 40, C)
    assert torch.equal(block(x2)[0][:, :40], full[:, :40])


def test_rwkv_is_stable_for_long_and_extreme_inputs():
    C = 4
    w, u = -torch.exp(torch.tensor([-8.0, 0.0, 2.0, 5.0])), torch.zeros(C)
    k = torch.randn(1, 3000, C) * 30  # exponents far beyond float32's exp range without max subtraction
    v = torch.randn(1, 3000, C)
    out, _ = wkv_chunked(w, u, k, v, chunk_size=64)
    assert torch.isfinite(out).all()
    assert torch.allclose(out[:, :200], wkv_recurrent(w, u, k[:, :200], v[:, :200])[0], atol=1e-4)


def test_crm_block_is_batch_invariant():
    torch.manual_seed(0)
    block = CRMBlock(8, rwkv_layers=2, downsample=2, chunk_size=4)
    long, short = torch.randn(1, 8, 37), torch.randn(1, 8, 21)
    batch = torch.zeros(2, 8, 37)
    batch[0], batch[1, :, :21] = long[0], short[0]
    out = block(batch, torch.tensor([37, 21]))
    assert torch.allclose(out[1, :, :21], block(short)[0], atol=1e-6)
    assert torch.allclose(out[0], block(long)[0], atol=1e-6)


def test_stft_same_inverts_with_istft_same():
    x = torch.from_numpy(speech_like(0.25))[None]
    spec = stft_same(x, 80, 40)
    assert spec.shape == (1, 41, math.ceil(x.shape[-1] / 40))
    y = istft_same(spec, 80, 40)[:, : x.shape[-1]]
    assert torch.allclose(y, x, atol=1e-5)


def test_factorized_prior_pmf_sums_to_one():
    torch.manual_seed(0)
    prior = FactorizedPrior(3)
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(0.3 * torch.randn_like(p))
    pmf = prior.pmf(16)
    assert pmf.shape == (3, 32) and (pmf >= 0).all()
    assert np.allclose(pmf.sum(-1), 1.0, atol=1e-12)
    # interior entries are the training likelihoods of the integers
    z = torch.arange(-15, 15, dtype=torch.float32).expand(1, 3, -1).contiguous()
    lik = prior.likelihood(z)[0].detach().double().numpy()
    assert np.allclose(lik, pmf[:, 1:-1], atol=1e-6)
    counts = quantize_pmf(pmf)
    assert (counts.sum(-1) == 2**PRECISION).all() and counts.min() >= 1


def test_gaussian_tables_and_scale_index():
    table = ScaleTable(0.11, 16.0, 32)
    pmf = table.pmf(32)
    assert np.allclose(pmf.sum(-1), 1.0, atol=1e-12)
    s = torch.from_numpy(table.scales())
    assert torch.equal(table.index(s), torch.arange(32))
    assert torch.equal(table.index(torch.tensor([1e-3, 1e3])), torch.tensor([0, 31]))
    lik = gaussian_likelihood(torch.arange(-31, 31, dtype=torch.float64)[None], s[:, None]).numpy()
    assert np.allclose(lik, pmf[:, 1:-1], atol=1e-9)
    counts = quantize_pmf(pmf)
    assert (counts.sum(-1) == 2**PRECISION).all() and counts.min() >= 1


def test_slice_parameters_are_causal_over_slices():
    torch.manual_seed(0)
    cfg = RateAwareConfig.tiny()
    cfg = RateAwareConfig.from_dict({**cfg.to_dict(), "num_slices": 4})
    ent = RateAwareModel(cfg).entropy.eval()
    B, F_ = 2, 30
    f_mean, f_scale, y_hat = torch.randn(B, 8, F_), torch.randn(B, 8, F_), torch.randn(B, 8, F_)
    for i in range(4):
        sl = ent.slice(i)
        mu, sigma = ent.slice_params(i, f_mean, f_scale, y_hat[:, : sl.start])
        later = y_hat.clone()
        later[:, sl.start :] = torch.randn_like(later[:, sl.start :]) * 5
        mu2, sigma2 = ent.slice_params(i, f_mean, f_scale, later[:, : sl.start])
        assert torch.equal(mu, mu2) and torch.equal(sigma, sigma2)
        if i > 0:  # the earlier slices do matter
            earlier = y_hat.clone()
            earlier[:, : sl.start] += 3
            mu3, _ = ent.slice_params(i, f_mean, f_scale, earlier[:, : sl.start])
            assert not torch.allclose(mu, mu3)
        assert (sigma >= cfg.min_scale).all()


# ------------------------------------------------------------------ bitstreams
def test_compress_round_trip_is_exact(tok):
    x = speech_like(0.8)
    data = tok.compress(x, sampling_rate=SR)
    assert isinstance(data, bytes)
    enc = tok(x, sampling_rate=SR)
    assert len(set(enc.codes[0].flatten().tolist())) > 10, "symbols should spread over the alphabet"
    out = tok.decode_stream(data)
    assert torch.equal(out.codes, enc.codes[0])  # the quantized latents
    audio, sr = tok.decompress(data)
    assert sr == SR and audio.dtype == np.float32 and audio.shape == x.shape
    assert np.array_equal(audio, tok.decode(enc).audio[0, 0, : len(x)].numpy())
    again, _ = tok.decompress(data)
    assert np.array_equal(audio, again)
    assert tok.compress(x, sampling_rate=SR) == data  # repeated runs: same bytes


def test_compress_is_independent_of_batching(tok):
    clips = [speech_like(0.61, 1, 150), speech_like(0.2, 2, 220), speech_like(0.01, 3)]
    batch = tok.compress(clips, sampling_rate=SR)
    assert isinstance(batch, list) and len(batch) == 3
    for clip, data in zip(clips, batch):
        assert tok.compress(clip, sampling_rate=SR) == data
        assert tok.compress([speech_like(1.0, 9), clip], sampling_rate=SR)[1] == data
        audio, _ = tok.decompress(data)
        assert audio.shape == clip.shape and np.isfinite(audio).all()
    stacked = np.stack([clips[1], clips[1]])[:, None]  # (B, C, T)
    assert tok.compress(stacked, sampling_rate=SR) == [batch[1], batch[1]]
    # the stream carries exactly the codes a batched encode gives, and decodes to the batched decode's audio
    enc = tok(clips, sampling_rate=SR)
    dec = tok.decode(enc)
    for i, data in enumerate(batch):
        out = tok.decode_stream(data)
        assert torch.equal(out.codes, enc[i])
        assert np.allclose(out.audio, dec.audio[i, 0, : len(clips[i])].numpy(), atol=1e-5)


def test_stream_size_matches_estimated_bits(tok):
    data, stats = tok.compress(speech_like(2.0), sampling_rate=SR, return_stats=True)
    assert stats.total_bytes == len(data)
    assert stats.estimated_bits > 5000
    payload_bits = 8 * stats.payload_bytes
    assert abs(payload_bits - stats.estimated_bits) <= 0.01 * stats.estimated_bits
    assert 8 * len(data) <= 1.01 * stats.estimated_bits + 8 * stats.overhead_bytes
    assert stats.overhead_bytes < 200
    assert stats.bits_per_second == pytest.approx(8 * len(data) / 2.0)
    assert stats.estimated_bits_y > 0 and stats.estimated_bits_z > 0


def test_truncated_corrupted_and_foreign_streams_are_rejected(tok):
    data = tok.compress(speech_like(0.5), sampling_rate=SR)
    header, payload = unpack_stream(data)
    assert header["samples"] == 8000 and header["sr"] == SR and header["lambda"] == tok.config.rd_lambda
    flipped = bytearray(data)
    flipped[len(data) - 4 - len(payload) // 2] ^= 0x10  # inside the payload
    with pytest.raises(BitstreamError, match="CRC32"):
        tok.decompress(bytes(flipped))
    for cut in (len(data) - 1, len(data) // 2, 12, 3, 0):
        with pytest.raises(CodecError, match="truncated"):
            tok.decompress(data[:cut])
    with pytest.raises(BitstreamError, match="overlong"):
        tok.decompress(data + b"\0")
    with pytest.raises(BitstreamError, match="magic"):
        tok.decompress(b"XXXX" + data[4:])
    with pytest.raises(BitstreamError, match="version"):
        tok.decompress(data[:4] + b"\x09" + data[5:])
    with pytest.raises(BitstreamError, match="inconsistent"):
        tok.decompress(pack_stream({**header, "frames": header["frames"] + 1}, payload))
    other = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("rate-aware", preset="tiny"), seed=1)
    with pytest.raises(BitstreamError, match="weights"):
        other.decompress(data)
    small = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("rate-aware", preset="tiny", latent_dim=12))
    with pytest.raises(BitstreamError, match="config"):
        small.decompress(data)
    with pytest.raises(BitstreamError, match="bytes"):
        tok.decompress("not bytes")


def test_prior_tables_follow_the_weights(tok):
    tok2 = spread(AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("rate-aware", preset="tiny")))
    x = speech_like(0.4)
    before = tok2.compress(x, sampling_rate=SR)
    counts = tok2.model.prior_counts.clone()
    with torch.no_grad():
        tok2.model.prior.biases[0].add_(0.5)
    after = tok2.compress(x, sampling_rate=SR)  # the z tables are rebuilt from the new prior
    assert not torch.equal(tok2.model.prior_counts, counts)
    assert after != before
    assert np.array_equal(tok2.decompress(after)[0], tok2.decompress(after)[0])
    with pytest.raises(BitstreamError, match="weights"):
        tok2.decompress(before)


def test_save_load_gives_identical_bytes(tok, tmp_path):
    x = speech_like(0.7, 5)
    data = tok.compress(x, sampling_rate=SR)
    tok.save_pretrained(tmp_path / "ra")
    loaded = AutoCodecTokenizer.from_pretrained(tmp_path / "ra")
    assert isinstance(loaded, RateAwareTokenizer)
    assert torch.equal(loaded.model.prior_counts, tok.model.prior_counts)
    assert torch.equal(loaded.model.gaussian_counts, tok.model.gaussian_counts)
    assert loaded.compress(x, sampling_rate=SR) == data
    assert np.array_equal(loaded.decompress(data)[0], tok.decompress(data)[0])


# ------------------------------------------------------------------ model contract and training
@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_untrained_latents_are_alive(preset):
    """The latent gains start y and z near one quantization step: without them every symbol of an
    untrained model rounds to 0 and training routes everything through the hyperprior path."""
    torch.manual_seed(0)
    config = AutoCodecConfig.for_model("rate-aware", preset=preset)
    model = RateAwareModel(config).eval()
    x = torch.from_numpy(speech_like(1.0))[None, None]
    with torch.no_grad():
        y, z, _, _ = model.analyze(x)
        no_gain = RateAwareModel(AutoCodecConfig.for_model("rate-aware", preset=preset, latent_gain=1.0,
                                                           hyper_latent_gain=1.0))
        no_gain.load_state_dict(model.state_dict())
        y1, z1, _, _ = no_gain.eval().analyze(x)
    assert 0.5 < float(y.std()) < 4 and 0.5 < float(z.std()) < 4
    assert float((torch.round(y) != 0).float().mean()) > 0.3
    assert float((torch.round(y1) != 0).float().mean()) < 0.05  # what the gains fix
    assert torch.allclose(y, y1 * config.latent_gain) and torch.allclose(z, z1 * config.hyper_latent_gain)
    # z's density starts about as wide as z: its bits per symbol are near the symbols' empirical entropy
    with torch.no_grad():
        bits_per_z = model(x).stats["bps_z"] * x.shape[-1] / model.config.sampling_rate / z.numel()
    _, counts = np.unique(model.clamp_symbols(z).numpy(), return_counts=True)
    entropy = float(-(counts / counts.sum() * np.log2(counts / counts.sum())).sum())
    assert bits_per_z < entropy + 1.5


def test_codes_layout_and_quantizer_count(tok):
    c = tok.config
    assert tok.num_quantizers == c.latent_dim + c.hyper_latent_dim == 12
    assert tok.codebook_size == 64 and c.symbol_offset == 32
    enc = tok(speech_like(0.3), sampling_rate=SR)
    z_rows = enc.codes[0, c.latent_dim :]
    assert torch.equal(z_rows[:, 0::2], z_rows[:, 1::2][:, : z_rows[:, 0::2].shape[-1]])  # z held over 2 frames
    with pytest.raises(ConfigError, match="num_quantizers=4"):
        tok(speech_like(0.3), sampling_rate=SR, num_quantizers=4)


def test_forward_output_for_the_trainer():
    torch.manual_seed(0)
    model = RateAwareModel(RateAwareConfig.tiny())
    audio = torch.from_numpy(np.stack([speech_like(0.3), np.pad(speech_like(0.2), (0, 1600))]))[:, None]
    lengths = torch.tensor([4800, 3200])
    model.eval()
    with torch.no_grad():
        out = model(audio, lengths)
        alone = model(audio[1:, :, :3200])
    assert out.audio.shape == (2, 1, 4800) and float(out.commit_loss) == 0.0
    assert isinstance(out, CodecModelOutput) and out.codes is None  # no codebooks: the rate is the output
    assert out.bits.shape == (2,) and out.stats["bps"] == pytest.approx(out.stats["bps_y"] + out.stats["bps_z"])
    assert torch.allclose(out.rate_loss, out.bits.sum() / lengths.sum())  # bits per input sample
    assert out.stats["bps"] == pytest.approx(float(out.bits.sum()) / 0.5, rel=1e-5)
    assert torch.allclose(alone.bits, out.bits[1:], rtol=1e-4)  # padding never changes an item's rate
    model.train()
    out = model(audio, lengths)
    out.rate_loss.backward()
    assert model.prior.biases[0].grad is not None and model.analysis.inp.conv.parametrizations.weight.original1.grad is not None


def test_rd_loss_falls_when_overfitting_one_clip():
    """The trainer's objective (time L1 + multi-scale spectral distortion, R + lambda D) on one clip."""
    torch.manual_seed(0)
    model = RateAwareModel(RateAwareConfig.tiny(rd_lambda=2.0)).train()
    x = torch.from_numpy(speech_like(0.3))[None, None]
    distortion = ReconstructionLoss(LossConfig(mel=0.0, time_l1=1.0), SR)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        out = model(x)
        loss = rate_distortion_loss(out.rate_loss, distortion(out.audio, x)[0], model.config.rd_lambda)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-3:]) < 0.6 * losses[0], losses


def test_num_quantizers_is_derived_and_old_configs_still_load(tmp_path):
    config = RateAwareConfig.tiny()
    assert "num_quantizers" not in vars(config) and config.num_quantizers == 8 + 4
    assert config.config_hash() == "d7fc343ea38b4b90"  # unchanged: shipped manifests carry it
    assert RateAwareConfig(**{**config.to_dict(), "latent_dim": 16}).num_quantizers == 20  # a stale value
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["num_quantizers"] == 12
    (tmp_path / "config.json").write_text(json.dumps({**saved, "num_quantizers": 99}))
    assert RateAwareConfig.from_pretrained(tmp_path).num_quantizers == 12


def test_presets_and_config_checks():
    paper = RateAwareConfig.paper()
    assert paper.sampling_rate == 16000 and paper.hop_length == 320 and paper.frame_rate == 50
    assert paper.num_quantizers == 64 + 16 and paper.codebook_size == 256
    # the compact hyperprior (issue 16): z has ~3% of y's elements, as in CompressAI's channel-wise models
    assert (paper.hyper_stride, paper.hyper_latent_dim) == (8, 16)
    small = RateAwareConfig.small()
    assert small.hyper_latent_dim / (small.latent_dim * small.hyper_stride) == pytest.approx(1 / 32)
    assert (RateAwareConfig.tiny().hyper_stride, RateAwareConfig.tiny().hyper_latent_dim) == (2, 4)  # golden-pinned
    assert PAPER_LAMBDAS == (0.25, 0.8, 2.0, 5.5, 9.0, 18.0)
    assert RateAwareConfig.paper(rd_lambda=18.0).rd_lambda == 18.0
    assert AutoCodecConfig.for_model("rate-aware", preset="small", rd_lambda=0.25).rd_lambda == 0.25
    assert AutoCodecConfig.for_model("rate-aware", preset="tiny", latent_dim=12).num_quantizers == 16
    with pytest.raises(ConfigError, match="num_slices"):
        RateAwareConfig(latent_dim=10, num_slices=4)
    with pytest.raises(ConfigError, match="encoder_strides"):
        RateAwareConfig(encoder_strides=[2])
    with pytest.raises(ConfigError, match="rd_lambda"):
        RateAwareConfig(rd_lambda=0)
