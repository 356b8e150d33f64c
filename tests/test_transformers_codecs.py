"""The audio codecs transformers ships, through `AutoCodecTokenizer` (tokenizer.codecs.transformers_codecs).

Every family gets a tiny random config built here, `save_pretrained` to a temporary directory and loaded
back by path (no hub access): codes inside the codebook with shape (B, K, ceil(T / hop)), decoded length,
save/load round trip with identical codes, batch invariance, operating points as `num_quantizers`.
EnCodec then tokenizes the sample corpus and VALL-E trains one step on the shards.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil

import numpy as np
import pytest
import torch

from tokenizer import AutoCodecTokenizer, CodecEncoding
from tokenizer.utils.errors import CodecError, ConfigError

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")
HAS_TORCHAUDIO = importlib.util.find_spec("torchaudio") is not None
HAS_ESPEAK = shutil.which("espeak-ng") is not None or shutil.which("espeak") is not None

_HUBERT = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, conv_dim=[8, 8],
               conv_stride=[4, 4], conv_kernel=[8, 4], num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2)
_XCODEC2 = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                head_dim=16, encoder_hidden_size=4, downsampling_ratios=[4, 4], quantization_dim=16,
                quantization_levels=[4, 4], semantic_model_config=dict(hidden_size=16, num_hidden_layers=1,
                num_attention_heads=2, intermediate_size=32, output_hidden_size=16))


def tiny_config(family: str, **overrides):
    """A transformers config of `family` small enough for a test (a few thousand parameters)."""
    T = transformers
    if family == "encodec":  # 8 kHz, hop 16 (500 Hz), 64 entries = 3 kbps per codebook: 3/6/12 kbps = K 1/2/4
        kw = dict(hidden_size=16, num_filters=4, upsampling_ratios=[4, 4], codebook_size=64, num_lstm_layers=1,
                  target_bandwidths=[3.0, 6.0, 12.0], sampling_rate=8000)
        return T.EncodecConfig(**{**kw, **overrides})
    if family == "dac":
        return T.DacConfig(encoder_hidden_size=4, downsampling_ratios=[2, 4], decoder_hidden_size=16, n_codebooks=4,
                           codebook_size=64, codebook_dim=4, sampling_rate=8000, hidden_size=32)
    if family == "mimi":
        return T.MimiConfig(hidden_size=16, num_filters=4, upsampling_ratios=[4, 4], codebook_size=64, codebook_dim=16,
                            num_quantizers=4, vector_quantization_hidden_dimension=16, upsample_groups=16,
                            num_hidden_layers=1, intermediate_size=32, num_attention_heads=2, num_key_value_heads=2,
                            sampling_rate=8000)
    acoustic = dict(encoder_hidden_size=4, downsampling_ratios=[4, 4], decoder_hidden_size=16, upsampling_ratios=[4, 4],
                    hidden_size=16)
    if family == "xcodec":  # 16 kHz, hop 16 (1000 Hz), 64 entries = 6 kbps per codebook
        return T.XcodecConfig(acoustic_model_config=acoustic, semantic_model_config=_HUBERT, codebook_size=64,
                              target_bandwidths=[6, 12, 24])
    if family == "higgs_audio_v2_tokenizer":
        return T.HiggsAudioV2TokenizerConfig(acoustic_model_config=acoustic, semantic_model_config=_HUBERT,
                                             codebook_size=64, codebook_dim=8, sample_rate=16000,
                                             semantic_sample_rate=16000, downsample_factor=16,
                                             target_bandwidths=[6, 12, 24])
    if family == "wavtokenizer":
        return T.WavTokenizerConfig(num_filters=4, upsampling_ratios=[4, 4], hidden_size=16, codebook_size=64,
                                    codebook_dim=16, decoder_hidden_size=16, decoder_intermediate_size=32,
                                    decoder_num_layers=1, decoder_attention_num_groups=4, num_lstm_layers=1,
                                    sampling_rate=8000)
    if family == "xcodec2":
        return T.Xcodec2Config(**_XCODEC2)
    if family == "neucodec":
        return T.NeuCodecConfig(**_XCODEC2)
    raise KeyError(family)


def randomize_codebooks(model, seed: int = 0):
    """Untrained transformers codebooks are often constant (every code 0): give them random entries so
    that the tests below can fail."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.named_buffers()) + list(model.named_parameters()):
            leaf = name.rsplit(".", 1)[-1]
            if "codebook" in name and t.is_floating_point():
                if leaf in ("embed", "embed_sum", "weight", "embed_avg"):
                    t.copy_(torch.randn(t.shape, generator=g))
                elif leaf in ("cluster_usage", "cluster_size"):
                    t.fill_(1.0)
    return model


def spread_codebooks_like_the_encoder(model, encoder, sampling_rate: int, seed: int = 0):
    """EnCodec-style encoders at random init give nearly constant outputs (std ~0.005 around an offset):
    draw the codebook entries from the output's own per-channel mean and spread (residual stages around
    0), as a k-means initialisation would, so that codes vary with the audio."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x = encoder(0.1 * torch.randn(1, 1, sampling_rate // 2, generator=g))[0]
        mu, sd = x.mean(-1), x.std(-1)
        embeds = [t for name, t in model.named_buffers() if name.endswith("codebook.embed")]
        for i, t in enumerate(embeds):
            t.copy_((mu if i == 0 else 0) + sd * torch.randn(t.shape, generator=g))
    return model


def save_tiny(family: str, directory, **overrides):
    torch.manual_seed(0)
    model = randomize_codebooks(transformers.AutoModel.from_config(tiny_config(family, **overrides)))
    if family in ("encodec", "wavtokenizer"):
        encoder = model.encoder if family == "encodec" else model.encoder_model.encoder
        spread_codebooks_like_the_encoder(model, encoder, model.config.sampling_rate)
    model.save_pretrained(directory)
    return directory


# family -> (expected default K, every supported K)
FAMILIES = {
    "encodec": (1, [1, 2, 4]),
    "dac": (4, [1, 2, 3, 4]),
    "mimi": (4, [1, 2, 3, 4]),
    "xcodec": (4, [1, 2, 4]),
    "wavtokenizer": (1, [1]),
}
NEED_TORCHAUDIO = ["higgs_audio_v2_tokenizer", "xcodec2", "neucodec"]


def _clips(sr: int, seconds=(0.3, 0.17, 0.5), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(int(sr * s))).astype(np.float32) for s in seconds]


@pytest.fixture(scope="module", params=list(FAMILIES))
def family_dir(request, tmp_path_factory):
    return request.param, save_tiny(request.param, tmp_path_factory.mktemp(request.param))


def test_family_codes_decode_roundtrip_and_batch_invariance(family_dir, tmp_path):
    family, directory = family_dir
    tok = AutoCodecTokenizer.from_pretrained(directory)
    default_k, supported = FAMILIES[family]
    assert type(tok).__name__ == "TransformersCodecTokenizer" and tok.name == family
    assert tok.num_quantizers == default_k and tok.model.supported_num_quantizers() == supported
    assert tok.frame_rate == tok.sampling_rate / tok.hop_length
    assert tok.bitrate == pytest.approx(tok.frame_rate * default_k * math.log2(tok.codebook_size))
    sr = tok.sampling_rate
    clips = _clips(sr)

    enc = tok(clips, sampling_rate=sr)
    assert isinstance(enc, CodecEncoding)
    assert enc.codes.dtype == torch.int64 and enc.codes.shape[:2] == (3, default_k)
    assert enc.lengths.tolist() == [math.ceil(len(c) / tok.hop_length) for c in clips]
    assert 0 <= int(enc.codes.min()) and int(enc.codes.max()) < tok.codebook_size
    assert len(torch.unique(enc[2])) > 1  # random codebooks: not one constant code

    for i, clip in enumerate(clips):  # batch invariance (padded batch or one by one, per the adapter)
        assert torch.equal(tok(clip, sampling_rate=sr)[0], enc[i]), (family, i)

    wavs = tok.batch_decode(enc)
    assert [len(w) for w in wavs] == [len(c) for c in clips] and all(np.isfinite(w).all() for w in wavs)

    for k in supported:  # each operating point gives K codebooks; the nominal rate follows K
        assert tok(clips[0], sampling_rate=sr, num_quantizers=k).codes.shape[1] == k
        assert tok.bitrate_for(k) == pytest.approx(tok.frame_rate * k * math.log2(tok.codebook_size))
    with pytest.raises(ConfigError, match="num_quantizers=99"):
        tok(clips[0], sampling_rate=sr, num_quantizers=99)

    again = AutoCodecTokenizer.from_pretrained(tok.save_pretrained(tmp_path / "copy"))
    assert torch.equal(again(clips, sampling_rate=sr).codes, enc.codes)
    assert again.weights_digest == tok.weights_digest and again.config_hash == tok.config_hash
    info = tok.codec_info()
    assert info["model_type"] == family and info["num_quantizers"] == default_k and info["weights_digest"]


def test_encodec_padded_batches_on_request_match_items_alone(tmp_path):
    tok = AutoCodecTokenizer.from_pretrained(save_tiny("encodec", tmp_path / "e"))
    assert tok.model.batch_invariant and not tok.padded_batches
    assert [tok.model.bandwidth_for(k) for k in (1, 2, 4)] == [3.0, 6.0, 12.0]
    clips = _clips(tok.sampling_rate, seconds=(0.5, 0.2, 0.37))
    calls = []
    original = tok.model.hf.encode
    tok.model.hf.encode = lambda *a, **kw: calls.append(a[0].shape[0]) or original(*a, **kw)
    exact = tok(clips, sampling_rate=tok.sampling_rate, num_quantizers=4)
    tok.padded_batches = True
    batched = tok(clips, sampling_rate=tok.sampling_rate, num_quantizers=4)
    assert calls == [1, 1, 1, 3]
    assert torch.equal(batched.lengths, exact.lengths)
    # causal with a padding mask: only float rounding of another batch size can flip a near-tie
    assert (batched.codes == exact.codes).float().mean() > 0.97
    # the item alone equals transformers' own encode of it at 12 kbps
    alone = original(torch.from_numpy(clips[0])[None, None], bandwidth=12.0, return_dict=True).audio_codes[0, 0]
    assert torch.equal(exact[0], alone[:, : exact.lengths[0]])


def test_non_invariant_families_encode_one_item_at_a_time(tmp_path):
    tok = AutoCodecTokenizer.from_pretrained(save_tiny("mimi", tmp_path / "m"))
    assert not tok.model.batch_invariant
    calls = []
    original = tok.model.hf.encode
    tok.model.hf.encode = lambda *a, **kw: calls.append(a[0].shape[0]) or original(*a, **kw)
    tok(_clips(tok.sampling_rate), sampling_rate=tok.sampling_rate)
    assert calls == [1, 1, 1]


def test_long_audio_is_windowed_with_the_receptive_field_as_context(tmp_path):
    tok = AutoCodecTokenizer.from_pretrained(save_tiny("encodec", tmp_path / "e"))
    clip = _clips(tok.sampling_rate, seconds=(2.5,))[0]
    whole = tok(clip, sampling_rate=tok.sampling_rate, chunk_seconds=None)
    windowed = tok(clip, sampling_rate=tok.sampling_rate, chunk_seconds=0.5, context_seconds=0.0)
    assert tok._window(0.5, 0.0)[1] == math.ceil(tok.model.receptive_field_seconds * tok.frame_rate)
    assert windowed.codes.shape == whole.codes.shape
    assert (windowed.codes == whole.codes).float().mean() > 0.95
    audio = tok.decode(whole, chunk_seconds=0.5, context_seconds=0.1)
    assert int(audio.lengths[0]) == len(clip)


@pytest.mark.skipif(HAS_TORCHAUDIO, reason="checks the message shown without torchaudio")
@pytest.mark.parametrize("family", NEED_TORCHAUDIO)
def test_families_needing_torchaudio_say_so(family, tmp_path):
    directory = tmp_path / family
    directory.mkdir()
    tiny_config(family).save_pretrained(directory)
    (directory / "model.safetensors").write_bytes(b"")  # never read: the check comes first
    with pytest.raises(ConfigError, match=f"{family} needs torchaudio"):
        AutoCodecTokenizer.from_pretrained(directory)


@pytest.mark.skipif(not HAS_TORCHAUDIO, reason="transformers' classes of these families need torchaudio")
@pytest.mark.parametrize("family", NEED_TORCHAUDIO)
def test_families_needing_torchaudio_roundtrip(family, tmp_path):
    tok = AutoCodecTokenizer.from_pretrained(save_tiny(family, tmp_path / family))
    clips = _clips(tok.sampling_rate)
    enc = tok(clips, sampling_rate=tok.sampling_rate)
    assert 0 <= int(enc.codes.min()) and int(enc.codes.max()) < tok.codebook_size
    assert all(torch.equal(tok(c, sampling_rate=tok.sampling_rate)[0], enc[i]) for i, c in enumerate(clips))
    assert [len(w) for w in tok.batch_decode(enc)] == [len(c) for c in clips]


# ------------------------------------------------------------------------------------ errors
def _config_only(tmp_path, name: str, config: dict):
    directory = tmp_path / name
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def test_not_a_codec_continuous_family_and_missing_weights_are_one_line_errors(tmp_path):
    bert = _config_only(tmp_path, "bert", {"model_type": "bert"})
    with pytest.raises(ConfigError, match="'bert'.*not an audio codec"):
        AutoCodecTokenizer.from_pretrained(bert)
    vibe = _config_only(tmp_path, "vibe", {"model_type": "vibevoice_acoustic_tokenizer"})
    with pytest.raises(ConfigError, match="unsupported codec family 'vibevoice_acoustic_tokenizer'.*continuous"):
        AutoCodecTokenizer.from_pretrained(vibe)
    empty = tmp_path / "noweights"
    tiny_config("encodec").save_pretrained(empty)
    with pytest.raises(CodecError, match="noweights has no weights"):
        AutoCodecTokenizer.from_pretrained(empty)
    with pytest.raises(ConfigError, match="48 kHz"):
        AutoCodecTokenizer.from_pretrained(save_tiny("encodec", tmp_path / "e48", normalize=True))


def test_hub_id_without_hub_access_or_local_copy(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(CodecError, match="cannot fetch codec 'facebook/encodec_24khz' from the hub"):
        AutoCodecTokenizer.from_pretrained("facebook/encodec_24khz")


# ------------------------------------------------------------------------------------ corpus, TTS, evaluation
def _tokenize_sample(codec, tokens, k: int) -> dict:
    from data_prep.sample_corpus import SAMPLE_ROOT
    from data_prep.tokenize_corpus import main as tokenize_main

    assert tokenize_main(["libritts", "--codec", str(codec), "--root", str(SAMPLE_ROOT), "--out", str(tokens),
                          "--num-workers", "0", "--shard-size", "8", "--num-quantizers", str(k)]) == 0
    manifest = json.loads((tokens / "manifest.json").read_text())
    tok = AutoCodecTokenizer.from_pretrained(codec)
    for key in ("model_type", "config_hash", "weights_digest"):
        assert manifest["codec"][key] == tok.codec_info(k)[key]
    assert manifest["codec"]["num_quantizers"] == k and manifest["counts"]["utterances"] > 10
    return manifest


# Tiny TTS models: one optimizer step each on the shards.
TTS_OVERRIDES = {
    "valle": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
    "mobilespeech": {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64, "encoder_layers": 1,
                     "prompt_encoder_layers": 1, "decoder_layers": 1, "duration_layers": 1, "aligner_dim": 16},
}


def _one_tts_step(model: str, tokens, out, max_tokens: int = 1200) -> None:
    from tts.trainer import load_train_config, train

    values = {"data": {"dirs": [str(tokens)], "max_tokens": max_tokens, "valid_utterances": 2}, "steps": 1,
              "out_dir": str(out), "log_every": 1, "eval_every": 100, "save_every": 100,
              "sample_every": 0, "log_with": "none", "optim": {"warmup_steps": 1},
              "overrides": TTS_OVERRIDES[model]}
    result = train(load_train_config(model, "tiny", overrides=values))
    assert result.step == 1
    losses = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in losses if "loss" in r]
    assert [r["step"] for r in steps] == [1] and all(math.isfinite(r["loss"]) for r in steps)


@pytest.mark.skipif(not HAS_ESPEAK, reason="phoneme ids need espeak-ng")
def test_tokenize_corpus_with_encodec_trains_valle_and_mobilespeech(tmp_path):
    # 24 kHz, hop 320 (75 Hz, as facebook/encodec_24khz), 64 entries: 0.9 / 1.8 kbps = K 2 / 4
    codec = save_tiny("encodec", tmp_path / "encodec", sampling_rate=24000, upsampling_ratios=[8, 5, 4, 2],
                      target_bandwidths=[0.9, 1.8])
    manifest = _tokenize_sample(codec, tmp_path / "tokens", 4)
    assert manifest["codec"]["frame_rate"] == 75
    for model in ("valle", "mobilespeech"):
        _one_tts_step(model, tmp_path / "tokens", tmp_path / model)
    # no table of per-code vectors is read from a transformers codec: MobileSpeech's aligner learns embeddings
    with pytest.raises(CodecError, match="per-code latent vectors"):
        AutoCodecTokenizer.from_pretrained(str(codec)).code_vectors()
    assert json.loads((tmp_path / "mobilespeech" / "final" / "config.json").read_text())["aligner_features"] == "codes"


@pytest.mark.skipif(not HAS_ESPEAK, reason="phoneme ids need espeak-ng")
def test_tokenize_corpus_with_each_family_trains_valle(family_dir, tmp_path):
    family, directory = family_dir
    k = max(FAMILIES[family][1])
    manifest = _tokenize_sample(directory, tmp_path / "tokens", k)
    # tiny configs have frame rates up to 500 Hz: a batch must hold the shorter (~2-6 s) utterances
    max_tokens = int(6 * manifest["codec"]["frame_rate"]) + 400
    _one_tts_step("valle", tmp_path / "tokens", tmp_path / "valle", max_tokens=max_tokens)


def test_evaluate_codec_takes_a_transformers_codec(tmp_path):
    import soundfile as sf

    from evaluation.evaluate_codec import main

    codec = save_tiny("encodec", tmp_path / "encodec")
    data = tmp_path / "data"
    data.mkdir()
    for i, clip in enumerate(_clips(16000, seconds=(0.4, 0.3))):
        sf.write(data / f"u{i}.wav", clip, 16000)
    out = tmp_path / "report"
    assert main(["--codec", str(codec), "--num-quantizers", "1", "4", "--data", str(data), "--out", str(out),
                 "--metrics", "si_sdr", "mel_distance", "--num-examples", "0"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    names = {s["name"]: s for s in summary["systems"]}
    assert set(names) == {"encodec@k=1", "encodec@k=4"}
    assert names["encodec@k=4"]["nominal_bitrate"] == pytest.approx(12000)


@pytest.mark.parametrize("model", ["valle", "mobilespeech"])
def test_table2_configs_differ_only_in_the_token_directory(model):
    from pathlib import Path

    from tts.trainer import load_train_config

    root = Path(__file__).resolve().parents[1] / "configs" / "tts"
    encodec = load_train_config(model, "paper", root / "table2" / f"{model}_encodec.yaml")
    language = load_train_config(model, "paper", root / "table2" / f"{model}_language_codec.yaml")
    paper = load_train_config(model, "paper", root / f"{model}_paper.yaml")
    assert encodec.data.dirs == ["tokens/libritts-encodec_24khz"] and language.data.dirs == ["tokens/libritts-language-codec"]
    for cfg in (encodec, language):
        cfg.data.dirs = paper.data.dirs
        assert cfg == paper
