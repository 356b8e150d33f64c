"""Stable Codec (TAAE + FSQ): quantizer grid and tokens, post-hoc residual FSQ, sliding-window attention,
causality and receptive field, batch invariance, save/load, overfitting, official-weights conversion."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file
from torch.overrides import TorchFunctionMode

from tokenizer import AutoCodecConfig, AutoCodecTokenizer, CodecError, ConfigError
from tokenizer.codecs.stable_codec import StableCodecConfig, StableCodecModel, StableCodecTokenizer
from tokenizer.codecs.stable_codec.convert import convert_stable_codec, main as convert_main
from tokenizer.losses import MultiScaleSpectralLoss
from tokenizer.utils.masking import length_mask, zero_past_lengths
from tokenizer.modules.transformer import dense_attention, local_attention
from tokenizer.quantizers.fsq import FiniteScalarQuantizer


def q_paper(x: torch.Tensor, levels: int) -> torch.Tensor:
    """The paper's scalar quantizer Q_L(x) = 2/(L-1) * floor((L-1) * (tanh(x)+1)/2 + 1/2) - 1, in float64."""
    return 2 / (levels - 1) * torch.floor((levels - 1) * (torch.tanh(x.double()) + 1) / 2 + 0.5) - 1


def tiny_tok(**overrides) -> StableCodecTokenizer:
    return AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("stable-codec", preset="tiny", **overrides))


def speechlike(seconds: float, sr: int = 16000, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * sr)) / sr
    tone = 0.4 * torch.sin(2 * math.pi * 220 * t) * torch.sin(2 * math.pi * 3 * t)
    return tone + 0.02 * torch.randn(t.shape, generator=g)


# ------------------------------------------------------------------ FSQ
@pytest.mark.parametrize("levels", [3, 5, 6, 9, 17])
def test_fsq_values_lie_on_the_level_grid(levels):
    q = FiniteScalarQuantizer(6, levels=levels, train_levels=[3]).eval()
    z = torch.randn(4, 6, 50) * 2
    out = q.decode(q.encode(z)).double()
    grid = (out + 1) * (levels - 1) / 2
    assert torch.allclose(grid, grid.round(), atol=1e-5) and out.abs().max() <= 1
    assert torch.allclose(out, q_paper(z, levels), atol=1e-6)
    assert len(torch.unique(out)) <= levels


def test_tokens_and_level_vectors_are_a_bijection_first_dimension_least_significant():
    q = FiniteScalarQuantizer(3, levels=5, train_levels=[5]).eval()
    tokens = torch.arange(125)[None]
    idx = q.tokens_to_indices(tokens)
    assert torch.equal(q.indices_to_tokens(idx), tokens)
    values = q.decode(tokens[:, None])[0].T  # (125, 3)
    assert len({tuple(v.tolist()) for v in values}) == 125
    # digit order: token 1 raises dimension 0 one step, token 5 raises dimension 1
    assert values[1].tolist() == [-0.5, -1.0, -1.0] and values[5].tolist() == [-1.0, -0.5, -1.0]
    # every value re-encodes to its token (atanh inverts the bounding tanh)
    assert torch.equal(q.encode(torch.atanh(values.T[None].double()))[0, 0], tokens[0])


@pytest.mark.parametrize("levels,stages,grid", [(3, 2, 5), (3, 3, 9), (3, 4, 17), (5, 1, 5), (5, 2, 17), (9, 1, 9),
                                               (17, 1, 17)])
def test_residual_decompositions_sum_to_a_trained_grid(levels, stages, grid):
    q = FiniteScalarQuantizer(6, levels=levels, stages=stages, train_levels=[17, 9, 5]).eval()
    assert q.scales == [1.0] + [(levels - 1) ** -k for k in range(1, stages)]
    z = torch.randn(3, 6, 40) * 1.5
    codes = q.encode(z)
    assert codes.shape == (3, stages, 40) and int(codes.max()) < levels ** 6
    total = q.decode(codes).double()
    assert grid in (17, 9, 5)
    assert torch.equal(total, q_paper(z, grid)), "stage sum differs from the single-stage grid quantizer"
    # a prefix of the stages is the coarser decomposition
    if stages > 1:
        assert torch.equal(q.decode(codes[:, :-1]).double(), q_paper(z, (levels - 1) ** (stages - 1) + 1))


@pytest.mark.parametrize("levels, stages", [(5, 1), (3, 2)])
def test_code_vectors_sum_to_the_decoded_latent(levels, stages):
    q = FiniteScalarQuantizer(4, levels, stages)
    table = q.code_vectors()
    assert table.shape == (stages, levels ** 4, 4)
    codes = torch.randint(0, levels ** 4, (2, stages, 6))
    summed = sum(table[k][codes[:, k]] for k in range(stages)).transpose(1, 2).clamp(-1, 1)
    assert torch.allclose(summed, q.decode(codes), atol=1e-6)


def test_decode_of_encode_equals_forward_in_eval():
    q = FiniteScalarQuantizer(6, levels=5, stages=2).eval()
    z = torch.randn(2, 6, 30, requires_grad=True)
    out = q(z)
    assert torch.equal(out.quantized, q.decode(q.encode(z))) and torch.equal(out.codes, q.encode(z))
    assert out.commit_loss.item() == 0
    out.quantized.sum().backward()
    assert z.grad is not None and torch.allclose(z.grad, 1 - torch.tanh(z.detach()) ** 2)


def test_training_noise_never_rounds_and_rounding_does():
    torch.manual_seed(0)
    z = torch.randn(4, 6, 200)
    noisy = FiniteScalarQuantizer(6, train_levels=[17, 9, 5], noise_prob=1.0, continuous_prob=0.0).train()
    rounded = FiniteScalarQuantizer(6, train_levels=[17, 9, 5], noise_prob=0.0, continuous_prob=0.0).train()
    seen = set()
    for _ in range(12):
        out = noisy(z)
        L = int(out.stats["fsq/levels"])
        seen.add(L)
        step = 2 / (L - 1)
        dev = out.quantized - torch.tanh(z)
        assert dev.abs().max() <= step / 2 + 1e-6 and dev.abs().max() > step / 4
        on_grid = ((out.quantized + 1) / step - ((out.quantized + 1) / step).round()).abs() < 1e-4
        assert on_grid.float().mean() < 0.01, "noise mode produced grid values"
        r = rounded(z)
        L = int(r.stats["fsq/levels"])
        assert torch.allclose(r.quantized.double(), q_paper(z, L), atol=1e-6)
        assert torch.equal(r.codes[:, 0], FiniteScalarQuantizer(6, levels=L, train_levels=[L]).encode(z)[:, 0])
    assert seen == {17, 9, 5}


def test_training_leaves_a_quarter_of_items_unquantised():
    """Official DitheredFSQ shares: 50% noise, 25% rounded, 25% unquantised (so continuous mode is trained)."""
    torch.manual_seed(0)
    z = torch.randn(4000, 6, 3)
    q = FiniteScalarQuantizer(6, train_levels=[17, 9, 5]).train()
    out = q(z)
    u = torch.tanh(z)
    L = int(out.stats["fsq/levels"])
    step = 2 / (L - 1)
    kept = (out.quantized == u).all(dim=(1, 2))
    on_grid = (((out.quantized + 1) / step - ((out.quantized + 1) / step).round()).abs() < 1e-5).all(dim=(1, 2))
    noisy = ~kept & ~on_grid
    shares = [float(m.float().mean()) for m in (noisy, on_grid & ~kept, kept)]
    assert shares == pytest.approx([0.5, 0.25, 0.25], abs=0.03), shares
    assert out.stats["fsq/continuous_fraction"] == pytest.approx(shares[2], abs=1e-6)
    z.requires_grad_(True)
    q(z).quantized.sum().backward()  # every mode passes tanh's gradient
    assert torch.allclose(z.grad, 1 - torch.tanh(z.detach()) ** 2, atol=1e-6)
    with pytest.raises(ConfigError, match="sum to at most 1"):
        FiniteScalarQuantizer(6, noise_prob=0.8, continuous_prob=0.3)
    assert StableCodecModel(StableCodecConfig.tiny()).quantizer.continuous_prob == 0.25


@pytest.mark.parametrize("levels,stages", [(5, 2), (3, 4)])
def test_residual_decoding_clips_to_the_trained_range(levels, stages):
    """Arbitrary token combinations (an LM's samples) can sum past 1; decoding clips them to [-1, 1],
    while every latent the encoder makes decodes exactly as before."""
    q = FiniteScalarQuantizer(6, levels=levels, stages=stages, train_levels=[17, 9, 5]).eval()
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(q.codebook_size, (4, stages, 50), generator=g)
    raw = sum(q.tokens_to_indices(codes[:, k]).float() * q._step(s) - s for k, s in enumerate(q.scales))
    assert raw.abs().max() > 1.2  # up to 1.25 (5 x 2) / 1.875 (3 x 4)
    assert torch.equal(q.decode(codes), raw.clamp(-1, 1))
    z = torch.randn(2, 6, 200, generator=g) * 3
    enc = q.encode(z)
    assert torch.equal(q.decode(enc), sum(q.tokens_to_indices(enc[:, k]).float() * q._step(s) - s
                                          for k, s in enumerate(q.scales)))


def test_bitrates_of_the_official_presets_are_exact():
    tok = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("stable-codec", preset="tiny"))
    cfg = StableCodecConfig.paper()
    assert (cfg.sampling_rate, cfg.hop_length, cfg.frame_rate, cfg.latent_dim) == (16000, 640, 25.0, 6)
    assert (cfg.codebook_size, cfg.bitrate) == (17 ** 6, 625)
    for preset, (size, k, bps) in {"1x46656_400bps": (46656, 1, 400), "2x15625_700bps": (15625, 2, 700),
                                   "4x729_1000bps": (729, 4, 1000)}.items():
        cfg.set_quantization(preset=preset)
        assert (cfg.codebook_size, cfg.num_quantizers, cfg.bitrate) == (size, k, bps), preset
    cfg.set_quantization(levels=5, stages=2)
    assert cfg.bitrate == 700 and cfg.tokens_per_second == 50
    low = StableCodecConfig.paper_12_5hz()
    assert (low.frame_rate, low.latent_dim, low.hop_length) == (12.5, 8, 1280)
    low.set_quantization(levels=5, stages=2)
    assert low.bitrate == 12.5 * 2 * math.ceil(math.log2(5 ** 8))
    tok.set_quantization(levels=5, stages=1)
    assert (tok.bitrate, tok.codebook_size, tok.num_quantizers) == (200 * 10, 625, 1)


def test_post_hoc_levels_work_at_or_above_the_smallest_trained_and_are_refused_below():
    tok = tiny_tok()  # trained with {9, 5}
    x = speechlike(0.3)
    for levels, stages in [(5, 1), (6, 1), (7, 1), (12, 1), (5, 2), (3, 2), (3, 4), (9, 1)]:
        tok.set_quantization(levels=levels, stages=stages)
        enc = tok(x, sampling_rate=16000)
        assert enc.codes.shape[1] == stages and int(enc.codes.max()) < levels ** 4
        assert tok.codec_info()["fsq_levels"] == levels and tok.codec_info()["fsq_stages"] == stages
        assert torch.isfinite(tok.decode(enc).audio).all()
    for levels, stages, match in [(4, 1, "levels=4"), (3, 1, "3-level grid"), (2, 2, "odd"), (6, 2, "odd"),
                                  (1, 1, "levels"), (5, 0, "stages")]:
        with pytest.raises(ConfigError, match=match):
            tok.set_quantization(levels=levels, stages=stages)
    with pytest.raises(ConfigError, match="unknown quantization preset 'nope'"):
        tok.set_quantization(preset="nope")
    with pytest.raises(ConfigError, match="num_quantizers=1 not supported"):
        tok.set_quantization(levels=3, stages=3)
        tok(x, sampling_rate=16000, num_quantizers=1)  # 3 levels alone is below 5
    assert tok.model.supported_num_quantizers() == [2, 3]


def test_codebook_size_is_derived_and_old_configs_still_load(tmp_path):
    """codebook_size follows the quantization (a property, never stored twice); config.json still records
    it, a saved file with any value loads, and the architecture hash is the one shipped manifests carry."""
    config = StableCodecConfig.tiny()
    assert "codebook_size" not in vars(config) and config.codebook_size == 3 ** 4
    assert config.config_hash() == "2066d1047ef4319c"
    config.set_quantization(levels=5, stages=1)
    assert config.codebook_size == 5 ** 4 and config.to_dict()["codebook_size"] == 625
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["codebook_size"] == 625
    (tmp_path / "config.json").write_text(json.dumps({**saved, "codebook_size": 17 ** 6}))  # a stale value
    loaded = StableCodecConfig.from_pretrained(tmp_path)
    assert loaded.codebook_size == 625 and loaded.config_hash() == config.config_hash()


def test_codec_info_records_levels_and_stages():
    tok = tiny_tok()
    tok.set_quantization(levels=5, stages=2)
    info = tok.codec_info()
    assert (info["fsq_levels"], info["fsq_stages"], info["fsq_scales"]) == (5, 2, [1.0, 0.25])
    assert info["codebook_size"] == 625
    assert info["bitrate"] == 200 * 2 * 10
    before = tok.config_hash
    tok.set_quantization(levels=3, stages=4)
    assert tok.config_hash != before


# ------------------------------------------------------------------ attention
@pytest.mark.parametrize("window,T", [((7, 8), 50), ((63, 64), 300), ((5, 0), 37), ((3, 9), 64), ((0, 0), 11)])
def test_sliding_window_attention_equals_a_dense_masked_reference(window, T):
    g = torch.Generator().manual_seed(T)
    q, k, v = (torch.randn(3, 2, T, 16, generator=g) for _ in range(3))
    lengths = torch.tensor([T, T - 7, 5])
    ours = local_attention(q, k, v, window, lengths)
    # independent reference: PyTorch's attention with an explicit (T, T) band-and-length mask
    rel = torch.arange(T)[None, :] - torch.arange(T)[:, None]
    allowed = (rel >= -window[0]) & (rel <= window[1]) & (torch.arange(T)[None, None, :] < lengths[:, None, None])
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None])
    for b, n in enumerate(lengths.tolist()):
        assert torch.allclose(ours[b, :, :n], ref[b, :, :n], atol=1e-5)
        assert torch.allclose(dense_attention(q, k, v, window, lengths)[b, :, :n], ref[b, :, :n], atol=1e-5)
    # on long inputs the window matters: full attention gives something else
    if T > sum(window) + 1:
        assert not torch.allclose(ours[0], dense_attention(q, k, v, None)[0], atol=1e-3)


class _LargestTensor(TorchFunctionMode):
    """Records the element count of the largest tensor any torch function returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_length_mask_and_zeroing_past_each_items_end():
    lengths = torch.tensor([3, 1, 4])
    assert length_mask(lengths, 4).tolist() == [[True, True, True, False], [True, False, False, False], [True] * 4]
    x = torch.ones(3, 2, 4)
    assert zero_past_lengths(x, lengths).sum((1, 2)).tolist() == [6.0, 2.0, 8.0]
    codes = torch.full((3, 4), 7)  # any rank (B, ..., T) and integer dtypes keep their dtype
    assert zero_past_lengths(codes, lengths).dtype == torch.int64 and zero_past_lengths(codes, lengths).sum() == 56
    assert zero_past_lengths(x, None) is x and zero_past_lengths(x, torch.tensor([4, 4, 4])) is x


def test_sliding_window_attention_memory_is_linear_in_length():
    T, window = 4096, (8, 8)
    q, k, v = (torch.randn(1, 1, T, 8) for _ in range(3))
    with _LargestTensor() as spy:
        local_attention(q, k, v, window)
    assert spy.largest <= T * 3 * 8 * 2, f"largest intermediate has {spy.largest} elements (T^2 = {T * T})"


# ------------------------------------------------------------------ model behaviour
def _audio(n_samples: int, seed: int) -> torch.Tensor:
    return (torch.randn(1, 1, n_samples, generator=torch.Generator().manual_seed(seed)) * 0.3)


def test_causal_variant_output_does_not_depend_on_the_future():
    torch.manual_seed(0)
    for causal in (True, False):
        cfg = StableCodecConfig.tiny()
        cfg.causal, cfg.sliding_window = causal, ([7, 0] if causal else [7, 8])
        cfg.layer_scale_init = 1.0
        model = StableCodecModel(cfg).eval()
        hop, cut = cfg.hop_length, 30 * cfg.hop_length
        x = _audio(60 * hop, 1)
        y = x.clone()
        y[..., cut:] = _audio(60 * hop - cut, 2)
        with torch.no_grad():
            cx, cy = model.encode(x)[0], model.encode(y)[0]
            ax, ay = model.decode(cx)[0], model.decode(cy)[0]
        if causal:
            assert torch.equal(cx[..., :30], cy[..., :30])
            assert torch.equal(ax[..., :cut], ay[..., :cut])
        else:
            assert not torch.equal(ax[..., :cut], ay[..., :cut]), "non-causal model ignores the future: test is void"
        assert not torch.equal(ax[..., cut:], ay[..., cut:])


def test_outputs_do_not_depend_on_inputs_beyond_the_receptive_field():
    torch.manual_seed(0)
    tok = tiny_tok(layer_scale_init=1.0)  # attention branches at full strength, not the 1e-5 init
    model = tok.model
    hop, P = model.config.hop_length, model.config.patch_size
    # receptive field of the tiny model (patches): encoder and decoder each see < 40 patches on each side
    field = 2 * 40 * P
    x = _audio(200 * hop, 3)
    y = x.clone()
    start = 150 * hop
    y[..., start:] = _audio(50 * hop, 4)
    with torch.no_grad():
        ax = model.decode(model.encode(x)[0])[0]
        ay = model.decode(model.encode(y)[0])[0]
    assert torch.equal(ax[..., : start - field], ay[..., : start - field])
    assert not torch.equal(ax[..., start - field :], ay[..., start - field :])
    # with full attention the same change reaches the very beginning
    full = StableCodecModel(StableCodecConfig(**{**model.config.to_dict(), "sliding_window": None})).eval()
    full.load_state_dict(model.state_dict())
    with torch.no_grad():
        fx, fy = full.decode(full.encode(x)[0])[0], full.decode(full.encode(y)[0])[0]
    assert not torch.equal(fx[..., :hop], fy[..., :hop])


def test_batch_invariance_through_the_tokenizer():
    tok = tiny_tok()
    clips = [speechlike(0.71, seed=1).numpy(), speechlike(0.123, seed=2).numpy(), speechlike(0.4567, seed=3).numpy()]
    batch = tok(clips, sampling_rate=16000)
    decoded = tok.decode(batch)
    for i, c in enumerate(clips):
        alone = tok(c, sampling_rate=16000)
        assert torch.equal(batch[i], alone.codes[0]), f"item {i} codes change inside the batch"
        a = tok.decode(alone).audio[0, 0, : len(c)]
        assert torch.allclose(decoded.audio[i, 0, : len(c)], a, atol=1e-5)


def test_continuous_mode_gives_bounded_latents_that_decode():
    tok = tiny_tok()
    latents, frames = tok.encode_continuous([speechlike(0.5).numpy(), speechlike(0.2).numpy()], sampling_rate=16000)
    assert latents.shape == (2, 4, 100) and frames.tolist() == [100, 40]
    assert latents.abs().max() < 1 and latents[1, :, 40:].abs().max() == 0
    enc = tok(speechlike(0.5).numpy(), sampling_rate=16000)
    q = tok.model.quantizer.decode(enc.codes)
    with torch.no_grad():
        assert torch.equal(tok.model.decode_latent(q), tok.model.decode(enc.codes)[0])
        assert (q - latents[:1]).abs().max() <= 0.25 + 1e-6  # 9-level grid: half a step of 0.25


def test_save_load_round_trip_keeps_the_quantization(tmp_path):
    tok = tiny_tok()
    tok.set_quantization(levels=5, stages=2)
    x = [speechlike(0.3).numpy(), speechlike(0.5, seed=5).numpy()]
    before = tok(x, sampling_rate=16000)
    tok.save_pretrained(tmp_path / "sc")
    loaded = AutoCodecTokenizer.from_pretrained(tmp_path / "sc")
    assert isinstance(loaded, StableCodecTokenizer) and (loaded.levels, loaded.stages) == (5, 2)
    assert torch.equal(loaded(x, sampling_rate=16000).codes, before.codes)
    assert torch.equal(loaded.decode(before).audio, tok.decode(before).audio)
    model = transformers.AutoModel.from_pretrained(tmp_path / "sc")
    assert type(model) is StableCodecModel
    for k, v in tok.model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k


def test_paper_preset_has_the_published_size():
    with torch.device("meta"):
        model = StableCodecModel(StableCodecConfig.paper())
    n = sum(p.numel() for p in model.parameters())
    assert 0.9e9 < n < 1.0e9, n  # "~950 M parameters"
    assert len(model.encoder.blocks[0].blocks) == 8 and len(model.encoder.blocks[1].blocks) == 20


def test_tiny_codec_overfits_one_clip():
    torch.manual_seed(0)
    model = StableCodecModel(StableCodecConfig.tiny()).train()
    t = torch.arange(8000) / 16000
    clip = (0.5 * torch.sin(2 * math.pi * 300 * t) * torch.sin(2 * math.pi * 3 * t)).reshape(1, 1, -1)
    spectral = MultiScaleSpectralLoss(16000, windows=(64, 128, 256))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(50):
        out = model(clip)
        loss = spectral(out.audio, clip) + out.commit_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-5:]) < 0.6 * losses[0], losses[::5]


# ------------------------------------------------------------------ official weights
def _official(channels=256, depths=(1, 2), patch=320, latent=6, seed=0):
    """A random state dict and model_config.json in the official stable-audio-tools TAAE layout."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, std=1.0):
        return torch.randn(*shape, generator=g) * std

    sd = {}

    def wn(prefix, cin, cout, k, transposed=False, bias=True):
        v = r(cin, cout, k) if transposed else r(cout, cin, k)
        sd[prefix + "weight_v"] = v
        # unit-norm rows (scaled by g ~ 1) keep activations O(1) through the stack
        sd[prefix + "weight_g"] = 1 + 0.1 * r(cin if transposed else cout, 1, 1).abs()
        if bias:
            sd[prefix + "bias"] = r(cout, std=0.05)

    def block(prefix, d):
        sd[prefix + "pre_norm.gamma"], sd[prefix + "pre_norm.beta"] = 1 + r(d, std=0.1), r(d, std=0.1)
        sd[prefix + "self_attn.to_qkv.weight"] = r(3 * d, d, std=d ** -0.5)
        sd[prefix + "self_attn.to_out.weight"] = r(d, d, std=d ** -0.5)
        for n in ("q_norm", "k_norm"):
            sd[prefix + f"self_attn.{n}.weight"] = 1 + r(min(128, d), std=0.3)
            sd[prefix + f"self_attn.{n}.bias"] = r(min(128, d), std=0.1)
        sd[prefix + "self_attn_scale.scale"] = 0.5 + r(d, std=0.1)
        sd[prefix + "ff_norm.gamma"], sd[prefix + "ff_norm.beta"] = 1 + r(d, std=0.1), r(d, std=0.1)
        sd[prefix + "ff.ff.0.proj.weight"] = r(8 * d, d, std=d ** -0.5)
        sd[prefix + "ff.ff.0.proj.bias"] = r(8 * d, std=0.05)
        sd[prefix + "ff.ff.2.weight"], sd[prefix + "ff.ff.2.bias"] = r(d, 4 * d, std=(4 * d) ** -0.5), r(d, std=0.05)
        sd[prefix + "ff_scale.scale"] = 0.5 + r(d, std=0.1)
        rot = min(128, d) // 2
        sd[prefix + "rope.inv_freq"] = 1.0 / (10000 ** (torch.arange(0, rot, 2).float() / rot))

    wn("encoder.layers.0.", patch, channels, 7)
    for i in range(1, depths[0] + 1):
        block(f"encoder.layers.1.layers.2.{i}.", channels)
    wn("encoder.layers.2.layers.1.", channels, channels, 4)
    for i in range(1, depths[1] + 1):
        block(f"encoder.layers.2.layers.2.{i}.", channels)
    wn("encoder.layers.4.", channels, latent, 3)
    wn("decoder.layers.0.", latent, channels, 3)
    for i in range(1, depths[1] + 1):
        block(f"decoder.layers.1.layers.0.{i}.", channels)
    wn("decoder.layers.1.layers.2.", channels, channels, 4, transposed=True)
    for i in range(1, depths[0] + 1):
        block(f"decoder.layers.2.layers.0.{i}.", channels)
    wn("decoder.layers.4.", channels, patch, 7, bias=False)
    taae = {"channels": channels, "c_mults": [1, 1], "strides": [1, 2], "latent_dim": latent,
            "transformer_depths": list(depths), "sliding_window": [63, 64], "use_snake": False, "checkpointing": True}
    config = {
        "model_type": "autoencoder", "sample_size": 16000 * 5, "sample_rate": 16000, "audio_channels": 1,
        "model": {
            "encoder": {"type": "taae", "config": {"in_channels": patch, **taae}},
            "decoder": {"type": "taae", "config": {"out_channels": patch, **taae}},
            "bottleneck": {"type": "dithered_fsq", "config": {"dim": latent, "levels": 17, "num_codebooks": 1}},
            "pretransform": {"type": "patched", "config": {"channels": 1, "patch_size": patch}},
            "latent_dim": latent, "downsampling_ratio": 2 * patch, "io_channels": 1,
        },
    }
    return sd, config


def _ref_block(sd, p, x, window):
    """One official TransformerBlock on (1, T, C): pre-norm attention and gated FF with LayerScale."""
    C, T = x.shape[-1], x.shape[1]
    d = min(128, C)
    h = F.layer_norm(x, (C,), sd[p + "pre_norm.gamma"], sd[p + "pre_norm.beta"], eps=1e-2)
    qkv = (h @ sd[p + "self_attn.to_qkv.weight"].T).chunk(3, -1)
    q, k, v = (t.reshape(1, T, C // d, d).transpose(1, 2) for t in qkv)  # "b n (h d) -> b h n d"
    q = F.layer_norm(q, (d,), sd[p + "self_attn.q_norm.weight"], sd[p + "self_attn.q_norm.bias"], eps=1e-6)
    k = F.layer_norm(k, (d,), sd[p + "self_attn.k_norm.weight"], sd[p + "self_attn.k_norm.bias"], eps=1e-6)
    freqs = torch.outer(torch.arange(T).float(), sd[p + "rope.inv_freq"])
    freqs = torch.cat((freqs, freqs), -1)
    rot = freqs.shape[-1]

    def rope(t):
        a, b = t[..., :rot], t[..., rot:]
        a1, a2 = a[..., : rot // 2], a[..., rot // 2 :]
        return torch.cat((a * freqs.cos() + torch.cat((-a2, a1), -1) * freqs.sin(), b), -1)

    mask = None
    if window is not None:
        rel = torch.arange(T)[None, :] - torch.arange(T)[:, None]
        mask = (rel >= -window[0]) & (rel <= window[1])
    out = F.scaled_dot_product_attention(rope(q), rope(k), v, attn_mask=mask)
    out = out.transpose(1, 2).reshape(1, T, C) @ sd[p + "self_attn.to_out.weight"].T
    x = x + sd[p + "self_attn_scale.scale"] * out
    h = F.layer_norm(x, (C,), sd[p + "ff_norm.gamma"], sd[p + "ff_norm.beta"], eps=1e-2)
    a, gate = F.linear(h, sd[p + "ff.ff.0.proj.weight"], sd[p + "ff.ff.0.proj.bias"]).chunk(2, -1)
    h = F.linear(a * F.silu(gate), sd[p + "ff.ff.2.weight"], sd[p + "ff.ff.2.bias"])
    return x + sd[p + "ff_scale.scale"] * h


def _wn(sd, p):
    return torch._weight_norm(sd[p + "weight_v"], sd[p + "weight_g"], 0)


def _ref_blocks(sd, prefix, x, window):
    idx = sorted({int(k[len(prefix):].split(".")[0]) for k in sd if k.startswith(prefix)})
    x = x.transpose(1, 2)
    for i in idx:
        x = _ref_block(sd, f"{prefix}{i}.", x, window)
    return x.transpose(1, 2)


def _ref_encode_latent(sd, audio, window, patch=320):
    x = audio.reshape(1, -1, patch).transpose(1, 2)  # "b c (l h) -> b (c h) l"
    x = F.conv1d(x, _wn(sd, "encoder.layers.0."), sd["encoder.layers.0.bias"], padding=3)
    x = _ref_blocks(sd, "encoder.layers.1.layers.2.", x, window)
    x = F.conv1d(x, _wn(sd, "encoder.layers.2.layers.1."), sd["encoder.layers.2.layers.1.bias"], stride=2, padding=1)
    x = _ref_blocks(sd, "encoder.layers.2.layers.2.", x, window)
    return F.conv1d(x, _wn(sd, "encoder.layers.4."), sd["encoder.layers.4.bias"], padding=1)


def _ref_decode(sd, latent, window, patch=320):
    x = F.conv1d(latent, _wn(sd, "decoder.layers.0."), sd["decoder.layers.0.bias"], padding=1)
    x = _ref_blocks(sd, "decoder.layers.1.layers.0.", x, window)
    x = F.conv_transpose1d(x, _wn(sd, "decoder.layers.1.layers.2."), sd["decoder.layers.1.layers.2.bias"],
                           stride=2, padding=1)
    x = _ref_blocks(sd, "decoder.layers.2.layers.0.", x, window)
    x = F.conv1d(x, _wn(sd, "decoder.layers.4."), None, padding=3)
    return x.transpose(1, 2).reshape(1, 1, -1)  # "b (c h) l -> b c (l h)"


def _ref_dithered_fsq_tokens(latent, levels=17):
    """The trained bottleneck in eval (float32): tanh, round to the grid, mixed-radix index, first dim lowest."""
    half = torch.tensor(2.0 / (levels - 1))
    u = torch.tanh(latent.transpose(1, 2))  # (B, n, d)
    idx = torch.round((u + 1) / half).long()
    return (idx * levels ** torch.arange(u.shape[-1])).sum(-1)  # (B, n)


def _ref_tokens_to_latent(tokens, levels, scale):
    half = torch.tensor(scale * 2.0 / (levels - 1))
    idx = (tokens[..., None] // levels ** torch.arange(6)) % levels
    return (idx * half - scale).transpose(1, 2)


def _ref_residual(latent, stages):
    """stable-codec's ResidualFSQBottleneck: float64 tanh, then per stage a leaky clip to the stage range,
    rounding, and the residual; decoding sums float32 stage values."""
    r = torch.tanh(latent.double()).transpose(1, 2)
    tokens = []
    for levels, scale in stages:
        half = torch.tensor(scale * 2.0 / (levels - 1))
        x = ((1 - 1e-3) * torch.clamp(r / scale, -1, 1) + 1e-3 * r / scale) * scale
        q = torch.round((x + scale) / half) * half - scale
        idx = torch.round((q + scale) / half).long()
        tokens.append((idx * levels ** torch.arange(6)).sum(-1))
        r = r - q
    latent_q = sum(_ref_tokens_to_latent(t, lv, s) for t, (lv, s) in zip(tokens, stages))
    return torch.stack(tokens, 1), latent_q


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    d = tmp_path_factory.mktemp("official")
    sd, config = _official()
    save_file(sd, str(d / "model.safetensors"))
    (d / "model_config.json").write_text(json.dumps(config))
    out = d / "converted"
    assert convert_main([str(d), str(out)]) == 0
    return sd, d, AutoCodecTokenizer.from_pretrained(out)


def test_converted_model_gives_the_official_tokens_and_audio(official):
    sd, _, tok = official
    cfg = tok.config
    assert (cfg.hidden_sizes, cfg.strides, cfg.depths, cfg.patch_size) == ([256, 256], [1, 2], [1, 2], 320)
    assert cfg.sliding_window == [63, 64]
    assert (cfg.quantizer_levels, cfg.num_quantizers, cfg.train_levels, cfg.frame_rate) == (17, 1, [17, 9, 5], 25.0)
    with torch.no_grad():
        # short input: no stage is longer than the window, so their CPU path (full attention) agrees too
        audio = _audio(640 * 12, 7)
        latent = _ref_encode_latent(sd, audio, None)
        ref_tokens = _ref_dithered_fsq_tokens(latent)
        enc = tok(audio[0, 0].numpy(), sampling_rate=16000)
        assert len(torch.unique(ref_tokens)) > 3, "degenerate test: latents collapse to one token"
        assert torch.equal(enc.codes[:, 0], ref_tokens)
        ref_audio = _ref_decode(sd, _ref_tokens_to_latent(ref_tokens, 17, 1.0), None)
        ours = tok.decode(enc.codes, chunk_seconds=None).audio
        assert ours.shape == ref_audio.shape
        assert torch.allclose(ours, ref_audio, atol=1e-4, rtol=1e-4), (ours - ref_audio).abs().max()
        # long input (160 patches > window): ours equals the windowed official forward (FlashAttention's
        # window), not the full attention their CPU fallback computes
        audio = _audio(640 * 80, 8)
        ours_latent, _ = tok.model.encode_latent(audio)
        windowed = _ref_encode_latent(sd, audio, (63, 64))
        assert torch.allclose(ours_latent, windowed, atol=1e-4)
        assert not torch.allclose(ours_latent, _ref_encode_latent(sd, audio, None), atol=1e-3)
        q = _ref_tokens_to_latent(_ref_dithered_fsq_tokens(windowed), 17, 1.0)
        assert torch.allclose(tok.model.decode_latent(q), _ref_decode(sd, q, (63, 64)), atol=1e-4, rtol=1e-4)


def test_converted_model_matches_the_official_post_hoc_presets(official):
    sd, _, tok = official
    audio = _audio(640 * 12, 9)
    with torch.no_grad():
        latent = _ref_encode_latent(sd, audio, None)
        for preset, stages in {"1x46656_400bps": [(6, 1.0)], "2x15625_700bps": [(5, 1.0), (5, 0.25)],
                               "4x729_1000bps": [(3, 1.0), (3, 0.5), (3, 0.25), (3, 0.125)]}.items():
            tok.set_quantization(preset=preset)
            ref_tokens, ref_latent = _ref_residual(latent, stages)
            enc = tok(audio[0, 0].numpy(), sampling_rate=16000)
            assert torch.equal(enc.codes, ref_tokens), preset
            assert torch.equal(tok.model.quantizer.decode(enc.codes), ref_latent), preset
            ref_audio = _ref_decode(sd, ref_latent, None)
            assert torch.allclose(tok.decode(enc.codes).audio, ref_audio, atol=1e-4, rtol=1e-4), preset
    tok.set_quantization(levels=17, stages=1)


def test_converter_reads_lightning_checkpoints_and_rejects_unknown_keys(official, tmp_path):
    sd, d, tok = official
    ckpt_dir = tmp_path / "ckpt"
    ckpt_dir.mkdir()
    (ckpt_dir / "model_config.json").write_text((d / "model_config.json").read_text())
    wrapped = {f"autoencoder.{k}": v for k, v in sd.items()}
    wrapped["discriminator.convs.0.weight"] = torch.zeros(2)
    torch.save({"state_dict": wrapped}, ckpt_dir / "model.ckpt")
    out = convert_stable_codec(ckpt_dir, tmp_path / "a", quantization="2x15625_700bps")
    again = AutoCodecTokenizer.from_pretrained(out)
    assert (again.levels, again.stages, again.bitrate) == (5, 2, 700)
    for k, v in tok.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k]), k
    wrapped["autoencoder.encoder.extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": wrapped}, ckpt_dir / "model.ckpt")
    with pytest.raises(CodecError, match="encoder.extra.weight"):
        convert_stable_codec(ckpt_dir, tmp_path / "b")
    with pytest.raises(CodecError, match="not found"):
        convert_stable_codec(tmp_path / "missing", tmp_path / "c")
    bad = json.loads((d / "model_config.json").read_text())
    bad["model"]["encoder"]["config"]["use_snake"] = True
    (ckpt_dir / "model_config.json").write_text(json.dumps(bad))
    with pytest.raises(CodecError, match="use_snake"):
        convert_stable_codec(ckpt_dir, tmp_path / "d")


# ------------------------------------------------------------------ shared trainer
def test_training_through_the_shared_trainer_runs_a_few_steps(tmp_path):
    train_cli = pytest.importorskip("training.codec.cli")
    rng = np.random.default_rng(0)
    for spk in (11, 22):
        t = np.arange(9600) / 16000
        x = 0.2 * np.sin(2 * np.pi * (150 + 2 * spk) * t) + 0.02 * rng.standard_normal(t.size)
        sf.write(tmp_path / f"{spk}-100-0000.wav", x.astype(np.float32), 16000)
    config = Path(__file__).resolve().parents[1] / "configs" / "codec" / "language_codec_tiny.yaml"
    out = tmp_path / "run"
    assert train_cli.main(["--config", str(config), f"--data.root={tmp_path}", f"--out_dir={out}", "--log_with=none",
                           "--model.codec=stable_codec", "--model.preset=tiny", "--steps=3", "--disc.mpd=false",
                           "--disc.mrd=false", "--data.holdout_speakers=0", "--eval_every=1000",
                           "--save_every=1000", "--export_every=1000"]) == 0
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    history = [r for r in rows if "loss/total" in r]  # the final step's eval has a row of its own
    assert [h["step"] for h in history] == [1, 2, 3] and [r["step"] for r in rows if "eval/stoi" in r] == [3]
    assert all(math.isfinite(h["loss/total"]) and h["loss/commit"] == 0 for h in history)
    assert {h["codebook/fsq/levels"] for h in history} <= {9.0, 5.0}
    tok = AutoCodecTokenizer.from_pretrained(out / "final")
    assert isinstance(tok, StableCodecTokenizer) and tok.config.hidden_sizes == [32, 32]
    torch.manual_seed(0)  # the trainer's seeded initialisation: the export holds trained weights, not these
    fresh = StableCodecModel(tok.config).state_dict()
    assert all(v.shape == fresh[k].shape for k, v in tok.model.state_dict().items())
    assert any(not torch.equal(v, fresh[k]) for k, v in tok.model.state_dict().items())
