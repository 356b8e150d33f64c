"""Public tokenizer API: shapes, save/load, batch invariance, resampling, long audio, errors."""

import json
import math

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
import transformers

from tokenizer import (AudioError, AutoCodecConfig, AutoCodecTokenizer, CodecError, CodecTokenizer, ConfigError,
                       list_codecs)
from tokenizer.registry import CODECS


def tone(seconds, sr, freq=220.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.4 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)


@pytest.fixture(scope="module", params=sorted(CODECS))
def tok(request):
    return AutoCodecTokenizer.from_config(AutoCodecConfig.for_model(request.param, preset="tiny"))


def test_registry_lists_user_facing_names():
    assert "language-codec" in list_codecs()


def test_shapes(tok):
    sr = tok.sampling_rate
    clips = [tone(0.5, sr), tone(0.23, sr, 330)]
    enc = tok(clips, sampling_rate=sr)
    assert enc.codes.dtype == torch.int64
    frames = [math.ceil(len(c) / tok.hop_length) for c in clips]
    assert enc.codes.shape == (2, tok.num_quantizers, max(frames))
    assert enc.lengths.tolist() == frames
    assert enc.mask.sum(1).tolist() == frames
    assert int(enc.codes.max()) < tok.codebook_size and int(enc.codes.min()) >= 0
    dec = tok.decode(enc)
    assert dec.audio.shape == (2, 1, max(frames) * tok.hop_length)
    assert dec.lengths.tolist() == [len(c) for c in clips]
    wavs = tok.batch_decode(enc)
    assert [w.shape for w in wavs] == [(len(c),) for c in clips]
    assert all(w.dtype == np.float32 and np.isfinite(w).all() for w in wavs)


def test_accepted_input_forms_agree(tok, tmp_path):
    sr = tok.sampling_rate
    x = tone(0.4, sr)
    ref = tok(x, sampling_rate=sr).codes
    assert torch.equal(tok(torch.from_numpy(x), sampling_rate=sr).codes, ref)
    assert torch.equal(tok(torch.from_numpy(x)[None, None], sampling_rate=sr).codes, ref)
    stereo = np.stack([x, x])
    assert torch.equal(tok([stereo], sampling_rate=sr).codes, ref)
    path = tmp_path / "a.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    assert torch.equal(tok(str(path)).codes, ref)
    assert torch.equal(tok([path, path]).codes[1:], ref)


def test_channel_layouts_agree_alone_and_in_lists(tok, tmp_path):
    """(T, C) as soundfile.read returns it, (C, T) as torchaudio.load does: one clip either way, alone or in
    a list (a (T, C) list item used to be averaged over time into a C-sample clip)."""
    sr = tok.sampling_rate
    tc = np.stack([tone(0.4, sr, 220, s) for s in range(6)], axis=1)  # (T, 6)
    path = tmp_path / "six.wav"
    sf.write(path, tc, sr, subtype="FLOAT")
    read, _ = sf.read(path, dtype="float32")
    ref = tok(path)
    assert ref.sample_lengths.tolist() == [len(tc)]
    for form in (read, read.T, [read], [read.T], torch.from_numpy(read)[None], torch.from_numpy(read.T.copy())[None]):
        enc = tok(form, sampling_rate=sr)
        assert enc.sample_lengths.tolist() == [len(tc)]
        assert torch.equal(enc.codes, ref.codes)


def test_integer_pcm_is_scaled_like_soundfile(tok, tmp_path):
    sr = tok.sampling_rate
    path = tmp_path / "pcm16.wav"
    sf.write(path, tone(0.4, sr), sr, subtype="PCM_16")
    pcm, _ = sf.read(path, dtype="int16")  # what scipy.io.wavfile.read returns too
    assert torch.equal(tok(pcm, sampling_rate=sr).codes, tok(path).codes)
    assert torch.equal(tok([torch.from_numpy(pcm)], sampling_rate=sr).codes, tok(path).codes)
    with pytest.raises(AudioError, match="peak amplitude 1.*unscaled integer PCM"):
        tok(pcm.astype(np.float32), sampling_rate=sr)


def test_derived_properties(tok):
    c = tok.config
    assert tok.frame_rate == c.sampling_rate / tok.hop_length
    assert tok.tokens_per_second == tok.frame_rate * tok.num_quantizers
    assert tok.bitrate == tok.frame_rate * tok.num_quantizers * math.ceil(math.log2(tok.codebook_size))
    assert "bitrate" not in c.to_dict() and "frame_rate" not in c.to_dict()


def test_paper_bitrates():
    cfg = AutoCodecConfig.for_model("language-codec", preset="paper")
    assert cfg.sampling_rate == 24000 and cfg.hop_length == 320 and cfg.frame_rate == 75
    assert cfg.bitrate_for(4) == 3000 and cfg.bitrate_for(8) == 6000
    assert cfg.bitrate == 6000 and cfg.tokens_per_second == 600


def test_save_load_round_trip(tok, tmp_path):
    sr = tok.sampling_rate
    x = [tone(0.3, sr), tone(0.5, sr, 440)]
    before = tok(x, sampling_rate=sr)
    tok.save_pretrained(tmp_path / "ckpt")
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["config.json", "model.safetensors"]
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["model_type"] == tok.config.model_type
    loaded = AutoCodecTokenizer.from_pretrained(tmp_path / "ckpt")
    after = loaded(x, sampling_rate=sr)
    assert torch.equal(before.codes, after.codes)
    assert torch.equal(tok.decode(before).audio, loaded.decode(after).audio)
    assert loaded.config.config_hash() == tok.config.config_hash()
    # transformers' own Auto classes load it too
    model = transformers.AutoModel.from_pretrained(tmp_path / "ckpt")
    assert type(model) is type(tok.model)
    for k, v in tok.model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k


def test_batch_invariance(tok):
    sr = tok.sampling_rate
    clips = [tone(0.61, sr, 200, 1), tone(0.137, sr, 300, 2), tone(0.333, sr, 500, 3), tone(0.0201, sr, 90, 4)]
    batch = tok(clips, sampling_rate=sr)
    dec = tok.decode(batch)
    for i, c in enumerate(clips):
        alone = tok(c, sampling_rate=sr)
        assert torch.equal(batch[i], alone.codes[0]), f"item {i} codes differ inside the batch"
        a = tok.decode(alone).audio[0, 0, : len(c)]
        assert torch.allclose(dec.audio[i, 0, : len(c)], a, atol=1e-5)
        assert dec.audio[i, 0, len(c):].abs().max() == 0 if len(c) < dec.audio.shape[-1] else True


@pytest.mark.parametrize("input_sr", [16000, 44100])
def test_resampling(tok, input_sr):
    x = tone(0.5, input_sr, 250)
    enc = tok(x, sampling_rate=input_sr)
    expected = soxr.resample(x, input_sr, tok.sampling_rate, quality="HQ").astype(np.float32)
    assert enc.sample_lengths.item() == len(expected)
    assert enc.lengths.item() == math.ceil(len(expected) / tok.hop_length)
    assert torch.equal(enc.codes, tok(expected, sampling_rate=tok.sampling_rate).codes)


def test_num_quantizers_controls_bitrate(tok):
    sr = tok.sampling_rate
    x = tone(0.3, sr)
    full = tok(x, sampling_rate=sr)
    for k in tok.model.supported_num_quantizers():
        enc = tok(x, sampling_rate=sr, num_quantizers=k)
        assert enc.codes.shape[1] == k
        # residual structure: fewer quantizers give a prefix of the full codes
        assert torch.equal(enc.codes, full.codes[:, :k])
        assert tok.bitrate_for(k) == tok.frame_rate * k * math.ceil(math.log2(tok.codebook_size))
        assert tok.decode(enc).audio.shape[-1] == full.codes.shape[-1] * tok.hop_length


def test_long_audio_is_chunked_with_bounded_windows(tok, monkeypatch):
    sr = tok.sampling_rate
    x = np.concatenate([tone(4, sr, f, s) for s, f in enumerate([180, 240, 320, 410, 150])])  # 20 s
    full = tok(x, sampling_rate=sr, chunk_seconds=None)
    seen = []
    encode = tok.model.encode

    def spy(audio, lengths=None, num_quantizers=None):
        seen.append(audio.shape[-1])
        return encode(audio, lengths, num_quantizers)

    monkeypatch.setattr(tok.model, "encode", spy)
    chunked = tok(x, sampling_rate=sr, chunk_seconds=3.0, context_seconds=0.5, batch_size=2)
    assert max(seen) <= (3.0 + 2 * 0.5) * sr + tok.hop_length
    assert len(seen) > 1
    assert chunked.codes.shape == full.codes.shape
    agree = (chunked.codes == full.codes).float().mean().item()
    assert agree > 0.95, f"chunked codes agree on only {agree:.3f} of entries"
    # decoding in windows gives the same length and stays close (exactness for convolutional decoders
    # is pinned per codec: attention layers see past the context, so only closeness is generic)
    a = tok.decode(full, chunk_seconds=None).audio
    b = tok.decode(full, chunk_seconds=3.0, context_seconds=0.5).audio
    assert a.shape == b.shape
    assert (a - b).abs().mean() < 0.25 * a.abs().mean() + 1e-6


def test_short_items_are_never_chunked(tok):
    sr = tok.sampling_rate
    x = tone(1.0, sr)
    assert torch.equal(tok(x, sampling_rate=sr, chunk_seconds=0.5, context_seconds=0.25).codes,
                       tok(x, sampling_rate=sr, chunk_seconds=None).codes)


def test_errors(tok, tmp_path):
    sr = tok.sampling_rate
    with pytest.raises(AudioError, match="empty"):
        tok(np.zeros(0, np.float32), sampling_rate=sr)
    bad = tone(0.2, sr)
    bad[10] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        tok(bad, sampling_rate=sr)
    inf = tone(0.2, sr)
    inf[3] = np.inf
    with pytest.raises(AudioError, match="1 NaN/inf"):
        tok([tone(0.2, sr), inf], sampling_rate=sr)
    with pytest.raises(AudioError, match=r"shape \(40, 100\): a 2-D array is one clip"):
        tok(np.zeros((40, 100), np.float32), sampling_rate=sr)
    with pytest.raises(AudioError, match="shape"):
        tok(np.zeros((1, 1, 2, 100), np.float32), sampling_rate=sr)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really a wav file")
    with pytest.raises(AudioError, match="junk.wav"):
        tok(str(junk))
    with pytest.raises(AudioError, match="not found"):
        tok(str(tmp_path / "missing.flac"))
    with pytest.raises(CodecError, match="outside the codebook"):
        tok.decode(torch.full((1, tok.num_quantizers, 5), tok.codebook_size))
    with pytest.raises(CodecError, match="-1 outside the codebook"):
        tok.decode(torch.full((1, tok.num_quantizers, 5), -1))
    with pytest.raises(CodecError, match="integers"):
        tok.decode(torch.zeros(1, tok.num_quantizers, 5))
    with pytest.raises(ConfigError, match="num_quantizers=99"):
        tok(tone(0.2, sr), sampling_rate=sr, num_quantizers=99)
    with pytest.raises(ConfigError, match="unknown codec 'no-such-codec'"):
        AutoCodecTokenizer.from_pretrained("no-such-codec")
    with pytest.raises(ConfigError, match="unknown codec"):
        AutoCodecConfig.for_model("nope")
    with pytest.raises(ConfigError, match="unknown preset"):
        AutoCodecConfig.for_model("language-codec", preset="huge")
    assert issubclass(CodecError, ValueError)


def test_builtin_name_loads_offline():
    tok = AutoCodecTokenizer.from_pretrained("language-codec")
    assert isinstance(tok, CodecTokenizer)
    again = AutoCodecTokenizer.from_pretrained("language_codec")
    x = tone(0.3, tok.sampling_rate)
    assert torch.equal(tok(x, sampling_rate=tok.sampling_rate).codes, again(x, sampling_rate=tok.sampling_rate).codes)


def test_overrides_on_a_preset_rederive_dependent_fields():
    cfg = AutoCodecConfig.for_model("language-codec", preset="tiny", num_quantizers=4)
    assert cfg.num_quantizers == 4 and cfg.quantizer_counts == [3, 4] and cfg.adanorm_num_embeddings == 2
    cfg = AutoCodecConfig.for_model("language-codec", preset="tiny", num_quantizers=5, quantizer_counts=[5])
    assert cfg.quantizer_counts == [5]
    with pytest.raises(ConfigError, match="unknown config field"):
        AutoCodecConfig.for_model("language-codec", preset="tiny", no_such_field=1)


def test_outputs_are_ordinary_tensors(tok):
    """Made under no_grad, not inference_mode: an embedding of the codes trains, edits in place work."""
    sr = tok.sampling_rate
    enc = tok([tone(0.3, sr), tone(0.2, sr, 330)], sampling_rate=sr)
    emb = torch.nn.Embedding(tok.codebook_size, 4)
    emb(enc.codes).sum().backward()
    assert emb.weight.grad is not None and emb.weight.grad.abs().sum() > 0
    enc.codes[:, :, 0] = 0  # in-place edit of the codes
    dec = tok.decode(enc)
    dec.audio *= 0.5  # and of the decoded audio
    assert torch.isfinite(dec.audio).all() and not dec.audio.requires_grad


def test_encoding_mapping_access_and_to(tok):
    sr = tok.sampling_rate
    enc = tok([tone(0.3, sr), tone(0.2, sr, 330)], sampling_rate=sr)
    assert list(enc.keys()) == ["codes", "lengths", "mask", "sample_lengths"]
    as_dict = dict(enc)
    assert list(as_dict) == list(enc.keys()) and "mask" in enc and "sampling_rate" not in enc
    assert as_dict["codes"] is enc.codes and enc["lengths"] is enc.lengths
    assert torch.equal(enc["mask"], enc.mask) and enc["mask"].sum(1).tolist() == enc.lengths.tolist()
    assert [k for k, _ in enc.items()] == list(enc.keys()) and len(enc.values()) == 4
    with pytest.raises(KeyError, match="'code'"):
        enc["code"]
    assert len(enc) == 2 and enc[1].shape == (tok.num_quantizers, int(enc.lengths[1]))  # the per-item view
    moved = enc.to("meta")
    assert moved is not enc and all(v.device.type == "meta" for v in moved.values())
    assert enc.codes.device.type == "cpu" and moved.sampling_rate == sr and moved.frame_rate == enc.frame_rate
    again = enc.to("cpu")
    assert torch.equal(tok.decode(again).audio, tok.decode(enc).audio)
    assert torch.equal(tok.encode(tone(0.2, sr), sampling_rate=sr).codes, tok(tone(0.2, sr), sampling_rate=sr).codes)


def test_decode_accepts_stored_code_dtypes_and_refuses_empty(tok):
    sr = tok.sampling_rate
    enc = tok(tone(0.3, sr), sampling_rate=sr)
    ref = tok.decode(enc.codes).audio
    for dtype in (np.uint16, np.uint8, np.int32, np.uint32):  # shards store the smallest unsigned type
        stored = enc.codes.numpy().astype(dtype)
        assert torch.equal(tok.decode(stored).audio, ref), dtype
        assert torch.equal(tok.decode(torch.from_numpy(stored)).audio, ref), dtype
    too_big = np.full((1, tok.num_quantizers, 3), tok.codebook_size, np.uint16)
    with pytest.raises(CodecError, match=f"code {tok.codebook_size} outside the codebook"):
        tok.decode(too_big)
    with pytest.raises(CodecError, match=r"codes have 0 items \(shape \(0, "):
        tok.decode(enc.codes[:0])
    with pytest.raises(AudioError, match="empty list of audio"):
        tok([], sampling_rate=sr)
    with pytest.raises(AudioError, match="empty batch of audio"):
        tok(np.zeros((0, 1, 100), np.float32), sampling_rate=sr)


def test_family_methods_return_ordinary_tensors():
    stable = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("stable-codec", preset="tiny"))
    latents, frames = stable.encode_continuous(tone(0.3, stable.sampling_rate), sampling_rate=stable.sampling_rate)
    assert not torch.is_inference(latents) and not torch.is_inference(frames)
    latents += 0  # in place
    rate_aware = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("rate-aware", preset="tiny"))
    data = rate_aware.compress(tone(0.3, rate_aware.sampling_rate), sampling_rate=rate_aware.sampling_rate)
    stream = rate_aware.decode_stream(data)
    assert not torch.is_inference(stream.codes)
    stream.codes[0, 0] = stream.codes[0, 0]


def test_save_and_load_print_no_progress_bars(tmp_path, capfd):
    from transformers.utils import logging as hf_logging

    tok = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("language-codec", preset="tiny"))
    assert hf_logging.is_progress_bar_enabled()
    tok.save_pretrained(tmp_path / "ckpt")
    AutoCodecTokenizer.from_pretrained(tmp_path / "ckpt")
    err = capfd.readouterr().err
    assert "Writing model shards" not in err and "Loading weights" not in err, err
    assert hf_logging.is_progress_bar_enabled()  # the user's setting is restored
    hf_logging.disable_progress_bar()
    try:
        AutoCodecTokenizer.from_pretrained(tmp_path / "ckpt")
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.enable_progress_bar()
