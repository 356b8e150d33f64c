"""Language-Codec internals: MCRVQ, quantizer inverse, training behaviour, official-checkpoint conversion."""

import math
import re

import pytest
import torch
import torch.nn.functional as F

from tokenizer import AutoCodecConfig, AutoCodecTokenizer, ConfigError
from tokenizer.codecs.language_codec import LanguageCodecConfig, LanguageCodecModel
from tokenizer.codecs.language_codec.convert import convert_language_codec, main as convert_main
from tokenizer.losses import MultiScaleSpectralLoss
from tokenizer.quantizers import MaskedChannelRVQ


@pytest.fixture
def rvq():
    torch.manual_seed(0)
    q = MaskedChannelRVQ(dim=12, num_quantizers=6, codebook_size=16).eval()
    return q


def test_mcrvq_channel_split_matches_paper():
    q = MaskedChannelRVQ(dim=128, num_quantizers=8, codebook_size=4)
    assert [q.channel_slice(i) for i in range(3)] == [slice(0, 42), slice(42, 85), slice(85, 128)]


def test_mcrvq_masking_property(rvq):
    torch.manual_seed(1)
    z = torch.randn(2, 12, 30)
    codes = rvq.encode(z, 3)
    for i in range(3):
        s = rvq.channel_slice(i)
        z2 = z.clone()
        outside = torch.ones(12, dtype=torch.bool)
        outside[s] = False
        z2[:, outside] = torch.randn_like(z2[:, outside]) * 5
        assert torch.equal(rvq.encode(z2, 3)[:, i], codes[:, i]), f"quantizer {i} saw channels outside its third"
        z3 = z.clone()
        z3[:, s] = torch.randn_like(z3[:, s]) * 5
        assert not torch.equal(rvq.encode(z3, 3)[:, i], codes[:, i])


def test_mcrvq_residual_stage_codes_latent_minus_parallel_outputs(rvq):
    z = torch.randn(1, 12, 20)
    codes = rvq.encode(z, 4)
    parallel = sum(F.embedding(codes[:, i], rvq.layers[i].embed).transpose(1, 2) for i in range(3))
    residual = (z - parallel).transpose(1, 2).reshape(-1, 12)
    d = torch.cdist(residual, rvq.layers[3].embed)
    assert torch.equal(codes[0, 3], d.argmin(-1))


def test_quantizer_decode_encode_equals_forward(rvq):
    z = torch.randn(3, 12, 25)
    for k in (3, 4, 6):
        out = rvq(z, k)
        assert torch.equal(rvq.decode(rvq.encode(z, k)), out.quantized)
        assert torch.equal(rvq.encode(z, k), out.codes)


def test_code_vectors_sum_to_the_quantized_latent():
    tok = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("language_codec", preset="tiny"))
    K, V = tok.num_quantizers, tok.codebook_size
    table = tok.code_vectors()
    assert table.shape == (K, V, tok.model.quantizer.layers[0].embed.shape[1]) and table.dtype == torch.float32
    codes = torch.randint(0, V, (2, K, 7))
    summed = sum(table[k][codes[:, k]] for k in range(K)).transpose(1, 2)
    assert torch.allclose(summed, tok.model.quantizer.decode(codes), atol=1e-6)
    assert tok.code_vectors(3).shape[0] == 3


def test_mcrvq_rejects_fewer_than_parallel(rvq):
    choices = re.escape("; choose one of [3, 4, 5, 6]")
    with pytest.raises(ConfigError, match="num_quantizers=2 not supported by MaskedChannelRVQ" + choices):
        rvq.encode(torch.randn(1, 12, 4), 2)
    model = LanguageCodecModel(LanguageCodecConfig.tiny())
    why = r"\(.*3 parallel MCRVQ quantizers would leave latent channels unrepresented\)"
    with pytest.raises(ConfigError, match="num_quantizers=2 not supported by language_codec " + why + choices):
        model.check_num_quantizers(2)


def test_check_num_quantizers_is_one_contract():
    """The base class validates every codec's count from `supported_num_quantizers()`: None means the
    config's default, bools and non-ints are refused with the value named."""
    model = LanguageCodecModel(LanguageCodecConfig.tiny())
    assert model.check_num_quantizers(None) == 6 and model.check_num_quantizers(4) == 4
    for bad in (True, 4.0, "4"):
        with pytest.raises(ConfigError, match=f"num_quantizers must be an int, got {bad!r}"):
            model.check_num_quantizers(bad)
    with pytest.raises(ConfigError, match=r"num_quantizers=7 not supported"):
        model.check_num_quantizers(7)
    for codec in ("stable_codec", "rate_aware"):
        tok = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model(codec, preset="tiny"), seed=0)
        supported = tok.model.supported_num_quantizers()
        assert tok.model.check_num_quantizers(None) == tok.config.num_quantizers in supported
        supported_text = re.escape(str(supported))
        with pytest.raises(ConfigError, match=f"num_quantizers=99 not supported by {codec}.*{supported_text}"):
            tok.model.check_num_quantizers(99)
    with pytest.raises(ConfigError, match="got True"):
        MaskedChannelRVQ(dim=12, num_quantizers=6, codebook_size=16).check_num_quantizers(True)


def test_ema_codebook_trains_and_reports_usage():
    torch.manual_seed(0)
    q = MaskedChannelRVQ(dim=8, num_quantizers=4, codebook_size=32, dead_code_threshold=0.5).train()
    data = torch.randn(4, 8, 200)
    first = None
    for step in range(30):
        out = q(data, 4)
        err = (out.quantized - data).pow(2).mean().item()
        first = err if step == 1 else first
    assert err < 0.7 * first
    assert 0 < out.stats["usage/0"] <= 1 and out.stats["perplexity/3"] > 1
    assert all(bool(layer.inited) for layer in q.layers)


def test_tiny_codec_overfits_one_clip():
    torch.manual_seed(0)
    model = LanguageCodecModel(LanguageCodecConfig.tiny()).train()
    sr = model.config.sampling_rate
    t = torch.arange(int(0.5 * sr)) / sr
    clip = (0.5 * torch.sin(2 * math.pi * 300 * t) * torch.sin(2 * math.pi * 3 * t)).reshape(1, 1, -1)
    spectral = MultiScaleSpectralLoss(sr, windows=(64, 128, 256))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        out = model(clip, num_quantizers=6)
        loss = spectral(out.audio, clip) + out.commit_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-5:]) < 0.6 * losses[0], losses[::5]


def test_chunked_decode_is_exact_when_context_covers_the_receptive_field():
    # without attention the Vocos decoder sees 3 x (1 + layers) frames each side, plus the iSTFT overlap
    cfg = AutoCodecConfig.for_model("language-codec", preset="tiny", num_attention_layers=0)
    tok = AutoCodecTokenizer.from_config(cfg)
    codes = torch.randint(0, cfg.codebook_size, (1, cfg.num_quantizers, 3000))  # 7.5 s at 400 Hz
    whole = tok.decode(codes, chunk_seconds=None).audio
    windows = tok.decode(codes, chunk_seconds=1.0, context_seconds=0.05).audio
    assert whole.shape == windows.shape
    assert torch.allclose(whole, windows, atol=1e-5)


def test_quantizer_dropout_draws_supported_counts():
    torch.manual_seed(0)
    model = LanguageCodecModel(LanguageCodecConfig.tiny()).train()
    seen = {model(torch.randn(1, 1, 800) * 0.1).num_quantizers for _ in range(30)}
    assert seen <= set(model.config.quantizer_counts) and len(seen) > 2


# ------------------------------------------------------------------ official checkpoint conversion
ENC = "feature_extractor.encodec.encoder.model."


def _official_state_dict(filters=4, strides=(2, 4, 5, 8), latent=15, n_q=8, bins=32, dim=16, inter=24,
                         layers=2, n_fft=1280, seed=0):
    """Random tensors in the authors' Lightning layout (legacy weight norm, EnCodec module indices)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g) * 0.3  # noqa: E731
    sd = {}

    def conv(prefix, cin, cout, k):
        sd[prefix + "weight_g"] = r(cout, 1, 1).abs() + 0.5
        sd[prefix + "weight_v"] = r(cout, cin, k)
        sd[prefix + "bias"] = r(cout) * 0.1

    conv(f"{ENC}0.conv.conv.", 1, filters, 7)
    i, ch = 0, filters
    for s in strides:
        i += 1
        conv(f"{ENC}{i}.block.1.conv.conv.", ch, ch // 2, 3)
        conv(f"{ENC}{i}.block.3.conv.conv.", ch // 2, ch, 1)
        conv(f"{ENC}{i}.shortcut.conv.conv.", ch, ch, 1)
        i += 2
        conv(f"{ENC}{i}.conv.conv.", ch, ch * 2, 2 * s)
        ch *= 2
    i += 1
    for layer in range(2):
        sd[f"{ENC}{i}.lstm.weight_ih_l{layer}"] = r(4 * ch, ch) * 0.3
        sd[f"{ENC}{i}.lstm.weight_hh_l{layer}"] = r(4 * ch, ch) * 0.3
        sd[f"{ENC}{i}.lstm.bias_ih_l{layer}"] = r(4 * ch) * 0.1
        sd[f"{ENC}{i}.lstm.bias_hh_l{layer}"] = r(4 * ch) * 0.1
    i += 2
    conv(f"{ENC}{i}.conv.conv.", ch, latent, 7)
    for q in range(n_q):
        p = f"feature_extractor.encodec.quantizer.vq.layers.{q}._codebook."
        sd[p + "embed"] = r(bins, latent)
        sd[p + "embed_avg"] = sd[p + "embed"].clone()
        sd[p + "cluster_size"] = torch.ones(bins)
        sd[p + "inited"] = torch.ones(1)
    sd["backbone.embed.weight"], sd["backbone.embed.bias"] = r(dim, latent, 7), r(dim) * 0.1
    sd["backbone.norm.scale.weight"], sd["backbone.norm.shift.weight"] = 1 + r(4, dim) * 0.1, r(4, dim) * 0.1
    for b in range(layers):
        p = f"backbone.convnext.{b}."
        sd[p + "dwconv.weight"], sd[p + "dwconv.bias"] = r(dim, 1, 7), r(dim) * 0.1
        sd[p + "norm.scale.weight"], sd[p + "norm.shift.weight"] = 1 + r(4, dim) * 0.1, r(4, dim) * 0.1
        sd[p + "pwconv1.weight"], sd[p + "pwconv1.bias"] = r(inter, dim), r(inter) * 0.1
        sd[p + "pwconv2.weight"], sd[p + "pwconv2.bias"] = r(dim, inter), r(dim) * 0.1
        sd[p + "gamma"] = torch.full((dim,), 0.5)
    sd["backbone.final_layer_norm.weight"], sd["backbone.final_layer_norm.bias"] = 1 + r(dim) * 0.1, r(dim) * 0.1
    sd["head.out.weight"], sd["head.out.bias"] = r(n_fft + 2, dim) * 0.2, r(n_fft + 2) * 0.1
    sd["head.istft.window"] = torch.hann_window(n_fft)  # a buffer the authors' strict loader requires
    # keys the converter must drop
    sd["multiperioddisc.discriminators.0.convs.0.weight"] = r(4, 1, 5, 1)
    sd["melspec_loss.mel_spec.spectrogram.window"] = torch.ones(4)
    sd["feature_extractor.encodec.decoder.model.0.conv.conv.weight_v"] = r(4, 4, 3)
    sd["dacdiscriminator.x"] = r(2)
    return sd


def _official_reference(sd, audio, bandwidth_id=0, strides=(2, 4, 5, 8), n_fft=1280, hop=320):
    """The authors' inference path written out with torch functionals, for one item (1, 1, T)."""
    def wconv(x, p, stride=1):
        w = torch._weight_norm(sd[p + "weight_v"], sd[p + "weight_g"], 0)
        k = w.shape[-1]
        total = k - stride
        n = (x.shape[-1] - k + total) / stride + 1
        extra = (math.ceil(n) - 1) * stride + (k - total) - x.shape[-1]
        right = total // 2
        x = F.pad(x, (total - right, right + extra), mode="reflect")
        return F.conv1d(x, w, sd[p + "bias"], stride=stride)

    x = wconv(audio, f"{ENC}0.conv.conv.")
    i = 0
    for s in strides:
        i += 1
        y = wconv(F.elu(x), f"{ENC}{i}.block.1.conv.conv.")
        y = wconv(F.elu(y), f"{ENC}{i}.block.3.conv.conv.")
        x = wconv(x, f"{ENC}{i}.shortcut.conv.conv.") + y
        i += 2
        x = wconv(F.elu(x), f"{ENC}{i}.conv.conv.", s)
    i += 1
    ch = x.shape[1]
    lstm = torch.nn.LSTM(ch, ch, 2)
    lstm.load_state_dict({k[len(f"{ENC}{i}.lstm."):]: v for k, v in sd.items() if k.startswith(f"{ENC}{i}.lstm.")})
    seq = x.permute(2, 0, 1)
    x = (lstm(seq)[0] + seq).permute(1, 2, 0)
    i += 2
    z = wconv(F.elu(x), f"{ENC}{i}.conv.conv.")
    # MCRVQ, official formulation
    D = z.shape[1]
    a, b = D // 3, 2 * D // 3
    masks = [torch.arange(D) < a, (torch.arange(D) >= a) & (torch.arange(D) < b), torch.arange(D) >= b]
    codes, outs = [], []
    residual = z
    for q in range(8):
        embed = sd[f"feature_extractor.encodec.quantizer.vq.layers.{q}._codebook.embed"]
        if q < 3:
            inp = z * masks[q][None, :, None]
        else:
            residual = residual - (outs[0] + outs[1] + outs[2] if q == 3 else 0) - (outs[-1] if q > 3 else 0)
            inp = residual
        flat = inp.transpose(1, 2).reshape(-1, D)
        dist = -(flat.pow(2).sum(1, keepdim=True) - 2 * flat @ embed.t() + embed.pow(2).sum(1)[None])
        idx = dist.argmax(-1)
        codes.append(idx)
        outs.append(embed[idx].T[None])
    quantized = sum(outs)
    # Vocos backbone
    cond = torch.tensor([bandwidth_id])

    def ada(x, p):
        x = F.layer_norm(x, (x.shape[-1],), eps=1e-6)
        return x * sd[p + "scale.weight"][cond][:, None] + sd[p + "shift.weight"][cond][:, None]

    h = F.conv1d(quantized, sd["backbone.embed.weight"], sd["backbone.embed.bias"], padding=3)
    h = ada(h.transpose(1, 2), "backbone.norm.").transpose(1, 2)
    nb = len({k.split(".")[2] for k in sd if k.startswith("backbone.convnext.")})
    for blk in range(nb):
        p = f"backbone.convnext.{blk}."
        y = F.conv1d(h, sd[p + "dwconv.weight"], sd[p + "dwconv.bias"], padding=3, groups=h.shape[1]).transpose(1, 2)
        y = ada(y, p + "norm.")
        y = F.linear(F.gelu(F.linear(y, sd[p + "pwconv1.weight"], sd[p + "pwconv1.bias"])), sd[p + "pwconv2.weight"], sd[p + "pwconv2.bias"])
        h = h + (sd[p + "gamma"] * y).transpose(1, 2)
    h = F.layer_norm(h.transpose(1, 2), (h.shape[1],), sd["backbone.final_layer_norm.weight"], sd["backbone.final_layer_norm.bias"], eps=1e-6)
    spec = F.linear(h, sd["head.out.weight"], sd["head.out.bias"]).transpose(1, 2)
    mag, phase = spec.chunk(2, dim=1)
    S = torch.exp(mag).clamp(max=100) * torch.exp(1j * phase)
    # "same"-padded inverse STFT by explicit overlap-add
    frames = torch.fft.irfft(S[0], n_fft, dim=0) * torch.hann_window(n_fft)[:, None]
    T = frames.shape[1]
    y = torch.zeros((T - 1) * hop + n_fft)
    env = torch.zeros_like(y)
    for t in range(T):
        y[t * hop : t * hop + n_fft] += frames[:, t]
        env[t * hop : t * hop + n_fft] += torch.hann_window(n_fft) ** 2
    pad = (n_fft - hop) // 2
    return torch.stack(codes)[:, None], (y / env)[pad:-pad]


def test_convert_official_checkpoint_reproduces_official_codes_and_audio(tmp_path):
    sd = _official_state_dict()
    ckpt = tmp_path / "languagecodec.ckpt"
    torch.save({"state_dict": sd, "global_step": 10}, ckpt)
    assert convert_main([str(ckpt), str(tmp_path / "conv")]) == 0
    tok = AutoCodecTokenizer.from_pretrained(tmp_path / "conv")
    cfg = tok.config
    assert (cfg.encoder_strides, cfg.latent_dim, cfg.num_quantizers, cfg.codebook_size) == ([2, 4, 5, 8], 15, 8, 32)
    assert (cfg.quantizer_counts, cfg.adanorm_num_embeddings, cfg.num_hidden_layers) == ([8], 4, 2)
    assert cfg.bitrate == 75 * 8 * 5
    g = torch.Generator().manual_seed(3)
    for T in (9600, 7777):
        audio = torch.randn(1, 1, T, generator=g) * 0.3
        ref_codes, ref_audio = _official_reference(sd, audio)
        enc = tok(audio[0, 0].numpy(), sampling_rate=24000)
        assert torch.equal(enc.codes[0], ref_codes[:, 0]), "converted model picks different codes"
        ours = tok.decode(enc.codes, chunk_seconds=None).audio[0, 0]
        assert ours.shape == ref_audio.shape == (enc.codes.shape[-1] * 320,)
        assert torch.allclose(ours, ref_audio, atol=1e-4, rtol=1e-4), (ours - ref_audio).abs().max()
    # the other AdaLayerNorm rows are reachable by bandwidth id
    enc = tok(torch.randn(4000, generator=g).numpy() * 0.3, sampling_rate=24000)
    a0 = tok.decode(enc.codes, chunk_seconds=None).audio
    a2 = tok.decode(enc.codes, chunk_seconds=None, bandwidth_id=2).audio
    assert not torch.allclose(a0, a2)


def test_convert_rejects_unknown_keys_and_missing_files(tmp_path):
    from tokenizer import CodecError

    sd = _official_state_dict()
    sd["something.else"] = torch.zeros(1)
    torch.save({"state_dict": sd}, tmp_path / "x.ckpt")
    with pytest.raises(CodecError, match="something.else"):
        convert_language_codec(tmp_path / "x.ckpt", tmp_path / "out")
    with pytest.raises(CodecError, match="not found"):
        convert_language_codec(tmp_path / "missing.ckpt", tmp_path / "out")


def test_convert_checks_the_istft_window_and_drops_it(tmp_path):
    from tokenizer import CodecError

    sd = _official_state_dict()
    for bad in (torch.hann_window(1280, periodic=False), torch.hann_window(1024), torch.ones(1280)):
        torch.save({"state_dict": {**sd, "head.istft.window": bad}}, tmp_path / "x.ckpt")
        with pytest.raises(CodecError, match="head.istft.window"):
            convert_language_codec(tmp_path / "x.ckpt", tmp_path / "out")
    torch.save({"state_dict": sd}, tmp_path / "ok.ckpt")
    tok = AutoCodecTokenizer.from_pretrained(convert_language_codec(tmp_path / "ok.ckpt", tmp_path / "ok"))
    assert "head.istft.window" not in tok.model.state_dict()
