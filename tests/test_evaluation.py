"""Evaluation: metric sanity on constructed cases, rate measures with known answers, baselines, backends
and both CLIs run in-process on espeak-ng speech."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import shutil
import subprocess

import numpy as np
import pytest

from tokenizer import AutoCodecConfig, AutoCodecTokenizer, CodecError
from tokenizer.audio import load_audio, resample

_absent = [m for m in ("pesq", "pystoi", "visqol", "speechmos", "librosa", "faster_whisper", "resemblyzer", "matplotlib")
           if importlib.util.find_spec(m) is None]  # looked up, not imported: keeps collection fast
if _absent:
    pytest.skip(f"evaluation packages not installed: {_absent}", allow_module_level=True)
if shutil.which("espeak-ng") is None:
    pytest.skip("espeak-ng (Debian) is needed to make test speech", allow_module_level=True)

from evaluation import metrics as M  # noqa: E402
from evaluation.asr import HubertCTCASR, cer, normalize_transcript, wer  # noqa: E402
from evaluation.baselines import (Codec2Baseline, OpusBaseline, align_to_reference,  # noqa: E402
                                            estimate_delay, parse_baseline)
from evaluation.rate import (bd_metric, bd_overlap, bd_rate, codebook_stats, huffman_code_lengths,  # noqa: E402
                                       mean_huffman_length, normalized_entropy, rd_front)
from evaluation.systems import TokenizerCodec, operating_points  # noqa: E402

SR = 16000
NEEDS_OPUS = pytest.mark.skipif(shutil.which("opusenc") is None, reason="Debian opus-tools not installed")
NEEDS_CODEC2 = pytest.mark.skipif(shutil.which("c2enc") is None, reason="Debian codec2 not installed")


def speak(path, text, voice="en"):
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
    return path


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """About 2.3 s of espeak-ng speech at 16 kHz."""
    path = speak(tmp_path_factory.mktemp("speech") / "clip.wav", "Speech coding keeps the voice clear.")
    data, sr = load_audio(path)
    return resample(data[0], sr, SR)


def noisy(x, snr_db, seed=0):
    noise = np.random.default_rng(seed).standard_normal(len(x)).astype(np.float32)
    return x + noise * np.sqrt(np.mean(x ** 2) / 10 ** (snr_db / 10))


# ------------------------------------------------------------------------------------ metrics
INTRUSIVE = ["pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "visqol", "mel_distance", "stft_distance", "vuv_f1",
             "spk_sim"]


@pytest.mark.parametrize("name", INTRUSIVE)
def test_metric_best_on_identical_and_monotone_in_noise(speech, name):
    higher = M.METRICS[name].higher_is_better
    scores = [M.compute_metrics(speech, speech if snr is None else noisy(speech, snr), SR, [name])[name]
              for snr in (None, 20, 10, 0)]
    signed = scores if higher else [-s for s in scores]
    assert all(a > b for a, b in zip(signed, signed[1:])), (name, scores)  # clean best, then strictly worse
    best = {"pesq_wb": 4.64, "pesq_nb": 4.54, "stoi": 1.0, "estoi": 1.0, "mel_distance": 0.0, "stft_distance": 0.0,
            "vuv_f1": 1.0, "spk_sim": 1.0}
    if name in best:
        assert scores[0] == pytest.approx(best[name], abs=0.01)
    if name == "si_sdr":
        assert scores[0] > 80 and scores[1] == pytest.approx(20, abs=0.5) and scores[3] == pytest.approx(0, abs=0.5)
    if name == "visqol":
        assert scores[0] > 4.3


def test_dnsmos_falls_with_noise(speech):
    scores = [M.dnsmos(speech if snr is None else noisy(speech, snr), SR) for snr in (None, 20, 10, 0)]
    for column in ("dnsmos_ovrl", "dnsmos_bak", "dnsmos_p808"):
        values = [s[column] for s in scores]
        assert all(a > b for a, b in zip(values, values[1:])), (column, values)
        assert 1.0 < values[-1] < values[0] < 5.0


def test_metrics_resample_and_parametric_si_sdr(speech):
    out = M.compute_metrics(speech, noisy(speech, 10), SR, ["si_sdr", "mel_distance"], waveform_matching=False)
    assert math.isnan(out["si_sdr"]) and out["mel_distance"] > 0
    x8 = resample(speech, SR, 8000)  # each metric resamples to its own rate
    assert M.pesq_wb(x8, x8, 8000) == pytest.approx(M.pesq_wb(resample(x8, 8000, SR), resample(x8, 8000, SR), SR))
    with pytest.raises(CodecError, match="unknown metric"):
        M.compute_metrics(speech, speech, SR, ["pesq_wb", "bogus"])
    with pytest.raises(CodecError, match="empty"):
        M.si_sdr(np.zeros(0), speech)


def test_utmos_needs_an_existing_local_file(tmp_path):
    with pytest.raises(CodecError, match="not found.*missing.onnx"):
        M.UTMOSPredictor(tmp_path / "missing.onnx")
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(CodecError, match="unsupported UTMOS weights"):
        M.UTMOSPredictor(tmp_path / "w.bin")
    (tmp_path / "w.safetensors").write_bytes(b"x")
    with pytest.raises(CodecError, match="model_factory"):
        M.UTMOSPredictor(tmp_path / "w.safetensors")


def test_utmos_calls_one_signature_and_does_not_swallow_model_errors(tmp_path, speech):
    import torch
    from safetensors.torch import save_file

    class NeedsRate(torch.nn.Module):
        def forward(self, wave, sampling_rate=None):
            if sampling_rate is None:
                raise RuntimeError("shape mismatch inside the model")
            return torch.tensor(3.5)

    class Mos(torch.nn.Module):
        def forward(self, wave):
            return torch.tensor(float(wave.shape[-1]))

    save_file({}, str(tmp_path / "none.safetensors"))
    with pytest.raises(RuntimeError, match="shape mismatch"):  # no retry with (wave, sr) hiding the error
        M.UTMOSPredictor(tmp_path / "none.safetensors", model_factory=NeedsRate)(speech, SR)
    mos = M.UTMOSPredictor(tmp_path / "none.safetensors", model_factory=Mos)
    assert mos(speech, 8000) == len(speech) * 2  # called once, as model(wave (1, T)) at 16 kHz


def _voiced(seconds, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 150 * t) * (1.2 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_undefined_metrics_are_nan_not_placeholders(speech):
    short = speech[SR // 2: SR // 2 + int(0.3 * SR)]
    assert math.isnan(M.stoi(short, short, SR)) and math.isnan(M.estoi(short, short, SR))  # pystoi: 1e-5
    tiny = speech[SR // 2: SR // 2 + 100]  # pystoi crashed on this (AxisError)
    assert math.isnan(M.stoi(tiny, tiny, SR))
    # long enough, but 0.2 s of speech in 1 s of near-silence: too few frames after silent-frame removal
    quiet = np.concatenate([_voiced(0.2), np.full(int(0.8 * SR), 1e-6, np.float32)])
    assert math.isnan(M.stoi(quiet, quiet, SR))
    silent, noise = np.zeros(SR, np.float32), noisy(speech, 0)[:SR]
    for fn in (M.mel_distance, M.stft_distance, M.si_sdr, M.stoi):
        assert math.isnan(fn(silent, noise, SR)), fn.__name__  # mel distance was 4e5
    with pytest.raises(M.Undefined, match="silent reference"):
        M.mel_distance.strict(silent, noise, SR)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no librosa "n_fft too large" warning: short clips are padded
        d = M.mel_distance(tiny, tiny * 0.5, SR)
    assert 0 < d < 10 and M.mel_distance(tiny, tiny, SR) == 0


def test_one_failing_metric_is_nan_with_its_reason_and_the_others_run(speech, monkeypatch):
    import dataclasses

    def boom(ref, deg, sr, options):
        raise IndexError("odd clip")

    tiny = speech[SR // 2: SR // 2 + 100]
    short = M.compute_metrics(tiny, tiny, SR, ["stoi", "mel_distance"])
    assert set(short.reasons) == {"stoi"} and "shorter" in short.reasons["stoi"] and short["mel_distance"] == 0
    empty = M.compute_metrics(speech, speech[:0], SR, ["mel_distance", "dnsmos"])
    assert all(math.isnan(v) for v in empty.values()) and "empty" in empty.reasons["dnsmos_ovrl"]
    monkeypatch.setitem(M.METRICS, "stoi", dataclasses.replace(M.METRICS["stoi"], compute=boom))
    out = M.compute_metrics(speech, speech, SR, ["stoi", "si_sdr", "mel_distance"])
    assert math.isnan(out["stoi"]) and out.reasons == {"stoi": "failed: IndexError: odd clip"}
    assert out["si_sdr"] > 80 and out["mel_distance"] == 0


# ------------------------------------------------------------------------------------ rate
@pytest.mark.parametrize("k", [1, 3, 6])
def test_uniform_histogram_costs_k_bits(k):
    counts = np.full(2 ** k, 7)
    assert normalized_entropy(counts) == pytest.approx(1.0)
    assert set(huffman_code_lengths(counts).tolist()) == {k}
    assert mean_huffman_length(counts) == k


def test_dyadic_histogram_gets_exact_huffman_lengths():
    counts = np.array([8, 4, 2, 1, 1, 0])  # p = 1/2, 1/4, 1/8, 1/16, 1/16, unused
    assert huffman_code_lengths(counts).tolist() == [1, 2, 3, 4, 4, 0]
    entropy_bits = 1 / 2 + 2 / 4 + 3 / 8 + 4 / 16 + 4 / 16
    assert mean_huffman_length(counts) == pytest.approx(entropy_bits)  # Huffman meets the entropy exactly
    assert normalized_entropy(counts, 6) == pytest.approx(entropy_bits / math.log2(6))
    assert normalized_entropy([5, 0, 0, 0]) == 0.0 and mean_huffman_length([5, 0]) == 1.0


def test_codebook_stats_over_a_corpus():
    # codebook 0 uniform over 4 symbols (2 bits), codebook 1 dyadic (1.75 bits), 50 frames per second
    utt1 = np.array([[0, 1, 2, 3, 0, 1, 2, 3], [0, 0, 0, 0, 1, 1, 2, 3]])
    utt2 = utt1.copy()
    stats = codebook_stats([utt1, utt2], [4, 8], frame_rate=50)
    assert stats.entropy[0] == pytest.approx(1.0) and stats.usage == [1.0, 0.5]
    assert stats.huffman_bits == pytest.approx([2.0, 1.75])
    assert stats.huffman_bitrate == pytest.approx(3.75 * 50) and stats.nominal_bitrate == (2 + 3) * 50
    assert stats.num_frames == 16
    with pytest.raises(CodecError, match="outside"):
        codebook_stats([np.array([[4], [0]])], [4, 8], 50)


def test_bd_rate_and_bd_metric_of_shifted_curves():
    rates = np.array([1000.0, 2000, 4000, 8000, 16000])
    quality = 1 + 0.8 * np.log2(rates / 500) - 0.03 * np.log2(rates / 500) ** 2
    assert bd_rate(rates, quality, rates * 0.8, quality) == pytest.approx(-20.0, abs=1e-6)
    assert bd_rate(rates, quality, rates * 1.25, quality) == pytest.approx(25.0, abs=1e-6)
    assert bd_metric(rates, quality, rates, quality + 0.3) == pytest.approx(0.3, abs=1e-9)
    assert bd_metric(rates, quality, rates * 0.8, quality) > 0  # same quality for fewer bits
    with pytest.raises(CodecError, match="do not overlap"):
        bd_rate(rates, quality, rates, quality + 10)
    for method in ("pchip", "cubic"):
        assert bd_rate(rates, quality, rates * 0.5, quality, method=method) == pytest.approx(-50.0, abs=1e-6)
    # a distance (lower is better): the same shift of the rate axis is the same saving
    distance = 5 - quality
    assert bd_rate(rates, distance, rates * 0.8, distance, higher_is_better=False) == pytest.approx(-20.0, abs=1e-6)
    assert bd_metric(rates, distance, rates, distance - 0.2, higher_is_better=False) == pytest.approx(-0.2)


def test_bd_uses_the_rate_distortion_front_and_reports_the_overlap():
    rates = np.array([1000.0, 2000, 4000, 8000])
    quality = np.array([1.0, 2.0, 2.5, 3.0])
    # a dominated point (more bits, worse quality) is dropped, so it cannot bend the curve
    with_bad = bd_rate(np.append(rates, 3000.0), np.append(quality, 1.5), rates * 0.5, quality)
    assert with_bad == pytest.approx(-50.0, abs=1e-6)
    xa, ma = rd_front([4000, 1000, 2000, 3000], [2.5, 1.0, 2.0, 1.9])
    assert np.allclose(10 ** xa, [1000, 2000, 4000]) and list(ma) == [1.0, 2.0, 2.5]
    with pytest.raises(CodecError, match="front"):
        rd_front([1000, 2000], [2.0, 1.5])  # quality falls with rate: one point on the front
    ov = bd_overlap(rates, quality, rates * 0.5, quality + 0.5)
    assert (ov["metric_low"], ov["metric_high"]) == (1.5, 3.0) and ov["metric_share"] == pytest.approx(0.75)
    assert ov["rate_share"] == pytest.approx(2 / 3)
    assert bd_overlap(rates, quality, rates, quality + 5)["metric_share"] == 0.0


# ------------------------------------------------------------------------------------ text
@pytest.mark.parametrize("text, expected", [
    ("Hello, World!", "hello world"),
    ("It was 25 degrees.", "it was twenty five degrees"),
    ("Don't  stop -- now...", "don't stop now"),
    ("Dr. Smith paid $3.", "doctor smith paid three dollars"),
    ("'Quoted' WORDS; twenty-one", "quoted words twenty one"),
])
def test_transcript_normaliser(text, expected):
    assert normalize_transcript(text) == expected


def test_wer_and_cer_after_normalisation():
    assert wer("Please call me at seven o'clock.", "please call me at 7 o'clock") == 0.0
    assert wer("the cat sat", "the cat sat down") == pytest.approx(1 / 3)
    assert wer(["a b", "c d"], ["a x", "c d"]) == pytest.approx(1 / 4)  # corpus level: errors / words
    assert cer("abc", "abd") == pytest.approx(1 / 3)
    assert math.isnan(wer("...", "anything"))


def test_hubert_ctc_backend_runs_on_a_tiny_random_model(tmp_path, speech):
    from transformers import (HubertConfig, HubertForCTC, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor,
                              Wav2Vec2Processor)

    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{c: i + 3 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz'")}}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json"), word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SR, padding_value=0.0, do_normalize=True)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(tmp_path / "asr")
    config = HubertConfig(vocab_size=len(vocab), pad_token_id=0, **TINY_SSL)
    HubertForCTC(config).save_pretrained(tmp_path / "asr")
    asr = HubertCTCASR(tmp_path / "asr")
    text = asr.transcribe(resample(speech, SR, 22050), 22050)
    assert isinstance(text, str) and set(text) <= set("abcdefghijklmnopqrstuvwxyz' ")
    assert asr.name == f"hubert-ctc:{tmp_path / 'asr'}"
    with pytest.raises(CodecError, match="cannot load HuBERT"):
        HubertCTCASR(tmp_path / "nowhere")


TINY_SSL = dict(conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4), hidden_size=16, num_hidden_layers=1,
                num_attention_heads=2, intermediate_size=32, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)


def test_wavlm_xvector_backend_on_a_tiny_random_model(tmp_path, speech):
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForXVector

    from evaluation.speaker import WavLMXVectorEncoder

    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SR, do_normalize=True).save_pretrained(tmp_path / "sv")
    config = WavLMConfig(tdnn_dim=(8, 8), tdnn_kernel=(3, 1), tdnn_dilation=(1, 1), xvector_output_dim=8,
                         num_buckets=8, max_bucket_distance=16, **TINY_SSL)
    WavLMForXVector(config).save_pretrained(tmp_path / "sv")
    enc = WavLMXVectorEncoder(tmp_path / "sv")
    e = enc.embed(speech, SR)
    assert e.shape == (8,) and np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5)
    assert enc.similarity(speech, speech, SR) == pytest.approx(1.0, abs=1e-5)
    assert -1.0 <= enc.similarity(speech, noisy(speech, -10), SR) <= 1.0


# ------------------------------------------------------------------------------------ baselines
@NEEDS_OPUS
@NEEDS_CODEC2
@pytest.mark.parametrize("spec", ["opus:6", "opus:12", "codec2:1200", "codec2:3200"])
def test_baseline_roundtrip_at_stated_bitrate(speech, spec):
    codec = parse_baseline(spec)
    x = resample(speech, SR, codec.sampling_rate)
    rt = codec.roundtrip(x)
    seconds = len(x) / codec.sampling_rate
    assert rt.audio.shape == x.shape and rt.audio.dtype == np.float32
    assert abs(rt.bits / seconds - codec.bitrate) / codec.bitrate < 0.15, (spec, rt.bits / seconds)
    assert rt.container_bits >= rt.bits and rt.encode_seconds > 0
    ref = resample(speech, SR, codec.sampling_rate)
    deg = align_to_reference(ref, rt.audio, codec.sampling_rate, envelope=True)[0] if codec.align_delay else rt.audio
    assert M.stoi(ref, deg, codec.sampling_rate) > 0.75  # intelligible speech comes back


@NEEDS_CODEC2
def test_codec2_delay_is_found_and_removed(speech):
    codec = Codec2Baseline("1200")
    assert not codec.waveform_matching and codec.align_delay
    x = resample(speech, SR, 8000)
    out = codec.roundtrip(x).audio
    lag = estimate_delay(x, out, 8000, envelope=True)
    assert 5 <= 1000 * lag / 8000 <= 50  # codec2's ~20 ms decoder delay
    aligned, _ = align_to_reference(x, out, 8000, envelope=True)
    assert M.stoi(x, aligned, 8000) > M.stoi(x, out, 8000)


def test_delay_estimation_on_a_shifted_signal(speech):
    late = np.concatenate([np.zeros(37, dtype=np.float32), speech])[: len(speech)]
    assert estimate_delay(speech, late, SR) == 37
    aligned, lag = align_to_reference(speech, late, SR)
    assert lag == 37 and np.allclose(aligned[: len(speech) - 37], speech[: len(speech) - 37])


def test_baseline_specs_are_checked():
    for bad in ("mp3:5", "opus", "opus:x", "codec2:999"):
        with pytest.raises(CodecError):
            parse_baseline(bad)
    assert isinstance(parse_baseline("codec2:700c"), Codec2Baseline)
    assert parse_baseline("opus:6").name == "opus:6" and isinstance(parse_baseline("opus:6"), OpusBaseline)


# ------------------------------------------------------------------------------------ operating points
@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("codec") / "tiny"
    AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("language-codec", preset="tiny")).save_pretrained(d)
    return d


def test_tokenizer_operating_points(tiny_dir, speech):
    tok = AutoCodecTokenizer.from_pretrained(tiny_dir)
    k3, k6 = operating_points(tok, num_quantizers=[3, 6])
    assert (k3.name, k3.bitrate, k6.bitrate) == ("language-codec@k=3", tok.bitrate_for(3), tok.bitrate_for(6))
    rt = k3.roundtrip(speech)
    assert rt.codes.shape[0] == 3 and rt.bits == rt.codes.shape[1] * 3 * 6 and rt.audio.shape == speech.shape
    with pytest.raises(CodecError, match="no set_quantization"):
        operating_points(tok, levels=[[5, 5]])
    (point,) = operating_points(tok)
    assert point.name == "language-codec@default" and isinstance(point, TokenizerCodec)


def test_fsq_points_and_entropy_codec_bits_come_from_the_codecs(speech):
    from evaluation.evaluate_codec import _parse_levels

    assert _parse_levels("5x2") == {"levels": 5, "stages": 2} and _parse_levels("6") == {"levels": 6, "stages": 1}
    assert _parse_levels("2x15625_700bps") == {"preset": "2x15625_700bps"}
    fsq = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("stable-codec", preset="tiny"))
    p52, p9 = operating_points(fsq, levels=[_parse_levels("5x2"), _parse_levels("9")])
    d = fsq.config.latent_dim
    assert p52.name == "stable-codec@levels=5,stages=2"
    assert p9.bitrate == fsq.frame_rate * math.ceil(math.log2(9 ** d))
    p52._apply()
    assert fsq.bitrate == p52.bitrate == fsq.frame_rate * 2 * math.ceil(math.log2(5 ** d))
    rt = p52.roundtrip(speech[: fsq.sampling_rate])
    assert rt.codes.shape[0] == 2
    ra = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("rate-aware", preset="tiny"))
    (point,) = operating_points(ra)
    assert point.name == f"rate-aware@lambda={ra.config.rd_lambda:g}" and math.isnan(point.bitrate)
    clip = speech[: ra.sampling_rate]
    rt = point.roundtrip(clip)
    data, stats = ra.compress(clip, sampling_rate=ra.sampling_rate, return_stats=True)
    assert rt.bits == 8 * stats.payload_bytes and rt.container_bits == 8 * len(data) > rt.bits
    assert rt.audio.shape == clip.shape


def test_several_codecs_each_take_the_operating_points_of_their_kind(tiny_dir, tmp_path):
    """An RVQ codec against entropy-codec models (one per lambda): --num-quantizers goes to the RVQ codec
    only; a flag no codec takes is an error; with one codec every flag applies (a wrong one fails)."""
    import argparse

    from evaluation.evaluate_codec import build_systems

    ra_dirs = []
    for lam in (0.5, 4.0):
        cfg = AutoCodecConfig.for_model("rate-aware", preset="tiny", rd_lambda=lam)
        AutoCodecTokenizer.from_config(cfg).save_pretrained(tmp_path / f"ra{lam}")
        ra_dirs.append(str(tmp_path / f"ra{lam}"))

    def args(codecs, **points):
        return argparse.Namespace(**{"codec": codecs, "device": None, "baselines": [], "num_quantizers": None,
                                     "levels": None, **points})

    systems = build_systems(args([str(tiny_dir), *ra_dirs], num_quantizers=[3, 6]))
    assert [s.name for s in systems] == ["language-codec@k=3", "language-codec@k=6", "rate-aware@lambda=0.5",
                                         "rate-aware@lambda=4"]
    with pytest.raises(CodecError, match="--levels"):
        build_systems(args([str(tiny_dir), *ra_dirs[:1]], levels=[{"levels": 5, "stages": 1}]))
    with pytest.raises(CodecError):
        build_systems(args(ra_dirs[:1], num_quantizers=[3]))


# ------------------------------------------------------------------------------------ reports
def test_result_store_resumes_adds_columns_and_merges(tmp_path):
    from evaluation.report import ResultStore

    path = tmp_path / "rows.csv"
    store = ResultStore(path, ["a"])
    store.add({"system": "x", "id": "1", "a": 1.5})
    store.add({"system": "x", "id": "2", "a": float("nan")})  # NaN is a value: the row is done
    again = ResultStore(path, ["a", "b"])  # a new column: header rewritten once, rows kept
    assert again.done(("x", "1"), ["a"]) and again.done(("x", "2"), ["a"])
    assert not again.done(("x", "1"), ["a", "b"]) and math.isnan(again.get(("x", "2"))["a"])
    again.add({"system": "x", "id": "1", "b": 2.0})
    final = ResultStore(path, ["a", "b"])
    assert final.get(("x", "1")) == {"system": "x", "id": "1", "a": 1.5, "b": 2.0}
    assert len(final.rows()) == 2 and final.columns == ["system", "id", "a", "b"]


# ------------------------------------------------------------------------------------ CLIs
def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@NEEDS_OPUS
@NEEDS_CODEC2
def test_evaluate_codec_cli_writes_every_report_and_resumes(tmp_path, tiny_dir, capsys):
    from evaluation.evaluate_codec import main

    data = tmp_path / "data"
    data.mkdir()
    speak(data / "one.wav", "Good morning, how are you today?")
    speak(data / "two.wav", "The sun is shining.", voice="en-us+f3")
    out = tmp_path / "report"
    metrics = ["pesq_wb", "stoi", "si_sdr", "mel_distance", "spk_sim"]
    argv = ["--codec", str(tiny_dir), "--num-quantizers", "3", "6", "--data", str(data), "--baselines", "opus:6",
            "codec2:1200", "--out", str(out), "--metrics", *metrics, "--num-examples", "1"]
    assert main(argv) == 0

    rows = _read_csv(out / "per_utterance.csv")
    assert len(rows) == 8 and {r["system"] for r in rows} == {"language-codec@k=3", "language-codec@k=6", "opus:6",
                                                                "codec2:1200"}
    c2 = [r for r in rows if r["system"] == "codec2:1200"]
    assert all(r["si_sdr"] == "nan" and "parametric" in r["note"] and float(r["delay_ms"]) > 0 for r in c2)
    assert all(r["spk_backend"] == "resemblyzer" for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    by_name = {s["name"]: s for s in summary["systems"]}
    k3 = by_name["language-codec@k=3"]
    assert k3["measured_bitrate"] == pytest.approx(k3["nominal_bitrate"], rel=0.02)
    assert len(k3["codebooks"]["entropy"]) == 3 and 0 < k3["codebooks"]["huffman_bitrate"] <= k3["nominal_bitrate"]
    assert by_name["opus:6"]["metrics"]["pesq_wb"]["n"] == 2 and by_name["codec2:1200"]["metrics"]["si_sdr"]["n"] == 0
    assert summary["bjontegaard"]["anchor"] == "language-codec"  # the only family with 2+ points
    md = (out / "results.md").read_text()
    assert "| codec2:1200 |" in md and "PESQ-WB ↑" in md and "Mel dist. ↓" in md
    for column in metrics:
        assert (out / f"rd_{column}.png").stat().st_size > 1000
    assert (out / "spectrograms" / "one.png").is_file() and not (out / "spectrograms" / "two.png").exists()
    assert (out / "codes" / "language-codec@k=6" / "two.npy").is_file()

    before = (out / "per_utterance.csv").read_bytes()
    assert main(argv) == 0  # resumed: nothing recomputed, rows unchanged
    assert (out / "per_utterance.csv").read_bytes() == before
    capsys.readouterr()
    assert main(["--codec", str(tiny_dir), "--levels", "5x2", "--data", str(data), "--out", str(tmp_path / "x")]) == 2
    assert "evaluate-codec: error:" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the --lambda path is gone: no codec implemented it
        main(["--codec", str(tiny_dir), "--lambda", "0.1", "--data", str(data), "--out", str(tmp_path / "x")])


def test_evaluate_codec_means_skip_undefined_values_and_odd_clips_do_not_stop_it(tmp_path, tiny_dir):
    """The corpus-integrity report's case: a 0.3 s clip scored STOI 1e-5 and halved the mean, a silent
    reference gave a mel distance of 4e5, a 100-sample clip crashed the run."""
    import soundfile as sf

    from evaluation.evaluate_codec import main

    data = tmp_path / "data"
    data.mkdir()
    speak(data / "a_good.wav", "Good morning, how are you today? The sun is shining.")
    x, sr = sf.read(data / "a_good.wav")
    sf.write(data / "b_short.wav", x[sr // 2: sr // 2 + int(0.3 * sr)], sr)
    sf.write(data / "c_100samples.wav", x[sr // 2: sr // 2 + 100], sr)
    sf.write(data / "d_silent.wav", np.zeros(sr), sr)
    out = tmp_path / "report"
    assert main(["--codec", str(tiny_dir), "--data", str(data), "--out", str(out), "--metrics", "stoi",
                 "mel_distance", "--num-examples", "4"]) == 0
    rows = {r["id"]: r for r in _read_csv(out / "per_utterance.csv")}
    assert set(rows) == {"a_good", "b_short", "c_100samples", "d_silent"}
    assert 0 < float(rows["a_good"]["stoi"]) <= 1 and not rows["a_good"]["note"]
    assert rows["b_short"]["stoi"] == "nan" and "shorter" in rows["b_short"]["note"]
    assert rows["d_silent"]["mel_distance"] == "nan" and "silent reference" in rows["d_silent"]["note"]
    (system,) = json.loads((out / "summary.json").read_text())["systems"]
    assert system["metrics"]["stoi"]["n"] == 1
    assert system["metrics"]["stoi"]["mean"] == pytest.approx(float(rows["a_good"]["stoi"]))
    assert system["metrics"]["mel_distance"]["n"] == 3 and system["metrics"]["mel_distance"]["mean"] < 100
    assert "(n=1)" in (out / "results.md").read_text()
    assert (out / "spectrograms" / "c_100samples.png").is_file()


def test_evaluate_tts_cli(tmp_path, capsys):
    from evaluation.evaluate_tts import main

    gen, ref = tmp_path / "generated", tmp_path / "ref"
    gen.mkdir()
    ref.mkdir()
    speak(gen / "good.wav", "Please call me at seven o'clock.")
    speak(gen / "wrong.wav", "Thank you very much for your help.")
    speak(ref / "good.wav", "Please call me at seven o'clock.", voice="en-us+f3")
    speak(ref / "prompt.wav", "The sun is shining and the sky is blue.")
    import soundfile as sf

    sf.write(gen / "silent.wav", np.zeros(SR, np.float32), SR)  # a collapsed model (F12: resemblyzer crashed)
    lines = [
        {"id": "good", "text": "Please call me at 7 o'clock.", "reference_audio": "ref/good.wav",
         "prompt_audio": "ref/prompt.wav"},
        {"id": "wrong", "text": "Green ideas sleep furiously tonight.", "prompt_audio": str(ref / "prompt.wav")},
        {"id": "absent", "text": "No file for this one."},
        {"id": "silent", "text": "Nothing.", "prompt_audio": "ref/prompt.wav"},
    ]
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "report"
    assert main(["--generated", str(gen), "--reference", str(tmp_path / "manifest.jsonl"), "--out", str(out)]) == 0

    rows = {r["id"]: r for r in _read_csv(out / "per_utterance.csv")}
    assert set(rows) == {"good", "wrong", "silent"}
    silent = rows["silent"]
    assert silent["spk_sim_prompt"] == silent["dnsmos_ovrl"] == "nan" and "silent" in silent["note"]
    good, wrong = rows["good"], rows["wrong"]
    assert float(good["wer"]) < 0.3 and float(wrong["wer"]) >= 0.8
    assert good["wer_backend"] == "whisper-tiny.en/faster-whisper" and good["spk_backend"] == "resemblyzer"
    assert float(good["spk_sim_prompt"]) > float(good["spk_sim_reference"])  # same espeak voice vs another voice
    assert wrong["spk_sim_reference"] == "" and "no reference audio" in wrong["note"]
    assert 1 < float(good["dnsmos_ovrl"]) < 5
    summary = json.loads((out / "summary.json").read_text())
    assert summary["missing"] == ["absent"] and summary["backends"]["asr"] == good["wer_backend"]
    assert summary["corpus"]["wer"] == pytest.approx(wer([lines[0]["text"], lines[1]["text"], lines[3]["text"]],
                                                         [good["hypothesis"], wrong["hypothesis"],
                                                          rows["silent"]["hypothesis"]]))
    # F21: the protocol is pinned, not only named: settings, package versions and the weights' digests
    protocol = summary["protocol"]
    asr, speaker = protocol["asr"], protocol["speaker"]
    assert asr["name"] == good["wer_backend"] and asr["beam_size"] == 5 and asr["compute_type"] == "int8"
    (whisper_bin, whisper_digest), = asr["weights"].items()
    assert whisper_bin.endswith("model.bin") and len(whisper_digest) == 16 and asr["packages"]["faster-whisper"]
    (encoder_file, encoder_digest), = speaker["weights"].items()
    assert encoder_file.endswith("pretrained.pt") and len(encoder_digest) == 16 and speaker["packages"]["resemblyzer"]
    assert len(protocol["normaliser"]["digest"]) == 16 and protocol["dnsmos"]["packages"]["speechmos"]
    assert "WER (corpus) ↓" in (out / "results.md").read_text()
    assert (out / "histograms.png").is_file() and (out / "spectrograms" / "good.png").is_file()
    capsys.readouterr()
    assert main(["--generated", str(gen), "--reference", str(tmp_path / "none.jsonl"), "--out", str(out)]) == 2
    assert "manifest not found" in capsys.readouterr().err


def test_evaluate_tts_language_extra_keys_and_unreadable_files(tmp_path, monkeypatch):
    """--language reaches the normaliser and the ASR; `prompt_text` (written by `synthesize`) is ignored;
    an unreadable generated file is skipped and recorded, the rest scored."""
    from evaluation import evaluate_tts
    from evaluation.asr import ASRBackend, get_asr

    class FakeASR(ASRBackend):
        name = "fake"

        def transcribe(self, audio, sampling_rate):
            return "I am twenty-five"

    asked = []
    monkeypatch.setattr(evaluate_tts, "get_asr", lambda spec, language: asked.append(language) or FakeASR())
    gen = tmp_path / "gen"
    gen.mkdir()
    import soundfile as sf

    sf.write(gen / "good.wav", noisy(np.zeros(SR // 2, np.float32) + 0.01, 0), SR)
    (gen / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    lines = [{"id": "good", "text": "I am 25.", "prompt_text": "Hello there.", "prompt_audio": "p.wav"},
             {"id": "broken", "text": "Not scored.", "prompt_text": "Hi."}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    scores = {}
    for language in ("en", "fr-fr"):
        out = tmp_path / language
        assert evaluate_tts.main(["--generated", str(gen), "--reference", str(tmp_path / "m.jsonl"), "--out",
                                  str(out), "--metrics", "wer", "--language", language, "--num-examples", "2"]) == 0
        rows = {r["id"]: r for r in _read_csv(out / "per_utterance.csv")}
        assert set(rows) == {"good"}
        summary = json.loads((out / "summary.json").read_text())
        assert list(summary["skipped"]) == ["broken"] and "broken.wav" in summary["skipped"]["broken"]
        scores[language] = float(rows["good"]["wer"])
    assert asked == ["en", "fr-fr"]
    assert scores["en"] == 0 and scores["fr-fr"] > 0  # "25" is spelled out by the English normaliser only
    with pytest.raises(CodecError, match="English only"):
        get_asr("whisper", "fr-fr")


def test_evaluate_tts_scores_only_the_generated_continuation(tmp_path, monkeypatch):
    """With the record `synthesize` writes beside a continuation output, speaker similarity is computed on
    the output after the prompt, against the prompt crop the model saw and the ground truth after it, while
    WER still hears the whole file; without a record the old whole-file comparison is kept (and said)."""
    import soundfile as sf

    from evaluation import evaluate_tts
    from evaluation.asr import ASRBackend
    from evaluation.speaker import SpeakerEncoder

    class BandEncoder(SpeakerEncoder):
        """A deterministic "voice": spectral magnitude below and above 1 kHz."""

        name = "bands"

        def embed(self, audio, sampling_rate):
            spec, freq = np.abs(np.fft.rfft(audio)), np.fft.rfftfreq(len(audio), 1 / sampling_rate)
            return np.array([spec[freq < 1000].sum(), spec[freq >= 1000].sum()])

    heard = []

    class LengthASR(ASRBackend):
        name = "fake-asr"

        def transcribe(self, audio, sampling_rate):
            heard.append(len(audio))
            return "one two three"

    encoder = BandEncoder()
    monkeypatch.setattr(evaluate_tts, "get_speaker_encoder", lambda spec: encoder)
    monkeypatch.setattr(evaluate_tts, "get_asr", lambda spec, language: LengthASR())

    def tone(hz, seconds):
        return 0.5 * np.sin(2 * np.pi * hz * np.arange(int(seconds * SR)) / SR).astype(np.float32)

    gen = tmp_path / "gen"
    gen.mkdir()
    # the ground truth: a low voice for 1 s (the prompt), then a mixed one; the model switched to a high voice
    truth = np.concatenate([tone(200, 1.0), tone(200, 2.0) + tone(3000, 2.0) * 0.5])
    sf.write(tmp_path / "truth.wav", truth, SR)
    output = np.concatenate([tone(200, 1.0), tone(3000, 2.0)])
    for name in ("cont", "empty", "bad"):
        sf.write(gen / f"{name}.wav", output if name != "empty" else tone(200, 1.0), SR)
    record = {"mode": "continuation", "sampling_rate": SR, "prompt_samples": SR, "prompt_input_samples": SR}
    for name in ("cont", "empty"):
        (gen / f"{name}.wav.json").write_text(json.dumps({"id": name, **record}))
    (gen / "bad.wav.json").write_text(json.dumps({**record, "mode": "sideways"}))
    lines = [{"id": i, "text": "one two three", "reference_audio": "truth.wav"} for i in ("cont", "empty", "bad")]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))

    def evaluate(out):
        assert evaluate_tts.main(["--generated", str(gen), "--reference", str(tmp_path / "m.jsonl"), "--out",
                                  str(out), "--metrics", "wer", "spk_sim", "--num-examples", "0"]) == 0
        return _read_csv(out / "per_utterance.csv")[0], json.loads((out / "summary.json").read_text())

    row, summary = evaluate(tmp_path / "new")
    loaded, truth = load_audio(gen / "cont.wav")[0][0], load_audio(tmp_path / "truth.wav")[0][0]
    new_prompt = encoder.similarity(loaded[SR:], truth[:SR], SR)  # prompt_audio absent: reference_audio's crop
    new_reference = encoder.similarity(loaded[SR:], truth[SR:], SR)
    whole = encoder.similarity(loaded, truth, SR)
    assert row["id"] == "cont" and row["mode"] == "continuation" and float(row["prompt_s"]) == 1.0
    assert float(row["scored_s"]) == 2.0 and float(row["duration_s"]) == 3.0 and heard == [3 * SR]
    assert float(row["spk_sim_prompt"]) == pytest.approx(new_prompt) and new_prompt < 0.05
    assert float(row["spk_sim_reference"]) == pytest.approx(new_reference)
    assert new_reference < whole - 0.2 and new_prompt < whole - 0.5  # the whole file flattered both
    assert summary["mode"] == "continuation" and summary["prompt_seconds"]["mean"] == 1.0
    assert summary["backends"] == {"asr": "fake-asr", "speaker": "bands"} and summary["scored_seconds"] == 2.0
    assert "nothing generated after the prompt" in summary["skipped"]["empty"]
    assert "sideways" in summary["skipped"]["bad"] and "bad.wav.json" in summary["skipped"]["bad"]
    assert "Mode: continuation; prompt: 1.00 ± 0.00 s" in (tmp_path / "new" / "results.md").read_text()

    for name in ("cont", "empty", "bad"):  # outputs of older versions: no record
        (gen / f"{name}.wav.json").unlink()
    row, summary = evaluate(tmp_path / "old")
    assert len(summary["skipped"]) == 0 and summary["num_utterances"] == 3
    assert row["mode"] == "unknown (whole file)" and row["prompt_s"] == "" and float(row["scored_s"]) == 3.0
    assert float(row["spk_sim_reference"]) == pytest.approx(whole)  # the whole files, as before
    assert row["spk_sim_prompt"] == "" and "no prompt audio" in row["note"]  # no fallback to reference_audio
    assert summary["mode"] == "unknown (whole file)" and summary["prompt_seconds"]["n"] == 0
    assert "Mode: unknown (whole file); prompt: not recorded" in (tmp_path / "old" / "results.md").read_text()


def test_evaluate_tts_rows_are_recomputed_when_what_they_were_computed_from_changed(tmp_path, monkeypatch, capsys):
    """F1 (tts-adversarial-3): a saved row is reused only when the generated WAV (bytes), its synthesis record,
    the reference text, the ground-truth / prompt files and the protocol (backends, their settings and weights)
    are those it was computed from; a recomputed row keeps nothing of the old one; the summary names the
    TTS exports that made the clips (mixed systems are said)."""
    import soundfile as sf

    from evaluation import evaluate_tts
    from evaluation.asr import ASRBackend
    from evaluation.speaker import SpeakerEncoder

    class LengthASR(ASRBackend):
        """Says one word per half second, so another clip gives another transcript."""

        def __init__(self, name):
            self.name = name

        def transcribe(self, audio, sampling_rate):
            return " ".join(["one"] * max(1, round(len(audio) / sampling_rate * 2)))

    class FlatEncoder(SpeakerEncoder):
        name = "flat"

        def embed(self, audio, sampling_rate):
            return np.array([1.0, float(np.abs(audio).mean())])

    backend = {"asr": LengthASR("fake-a")}
    monkeypatch.setattr(evaluate_tts, "get_asr", lambda spec, language: backend["asr"])
    monkeypatch.setattr(evaluate_tts, "get_speaker_encoder", lambda spec: FlatEncoder())
    gen = tmp_path / "gen"
    gen.mkdir()
    tone = lambda seconds, hz=200: 0.3 * np.sin(2 * np.pi * hz * np.arange(int(seconds * SR)) / SR)  # noqa: E731
    sf.write(gen / "a.wav", tone(1.0), SR)
    sf.write(gen / "b.wav", tone(1.0), SR)
    sf.write(tmp_path / "truth.wav", tone(1.0, 300), SR)
    manifest = tmp_path / "m.jsonl"

    def evaluate(lines, *metrics):
        manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
        capsys.readouterr()
        assert evaluate_tts.main(["--generated", str(gen), "--reference", str(manifest), "--out", str(tmp_path / "r"),
                                  "--metrics", *(metrics or ("wer",)), "--num-examples", "0"]) == 0
        computed = int(capsys.readouterr().out.split("(")[-1].split(" computed")[0])
        rows = {r["id"]: r for r in _read_csv(tmp_path / "r" / "per_utterance.csv")}
        return computed, rows, json.loads((tmp_path / "r" / "summary.json").read_text())

    lines = [{"id": "a", "text": "one one"}, {"id": "b", "text": "one one"}]
    computed, rows, _ = evaluate(lines)
    assert computed == 2 and float(rows["a"]["wer"]) == 0 and float(rows["a"]["duration_s"]) == 1.0
    assert evaluate(lines)[0] == 0  # nothing changed: nothing recomputed
    sf.write(gen / "a.wav", tone(2.0), SR)  # re-synthesized by another model
    computed, rows, _ = evaluate(lines)
    assert computed == 1 and float(rows["a"]["duration_s"]) == 2.0 and float(rows["a"]["wer"]) == 1.0
    computed, rows, _ = evaluate([{"id": "a", "text": "one one"}, {"id": "b", "text": "one"}])  # text changed
    assert computed == 1 and rows["b"]["text"] == "one" and float(rows["b"]["wer"]) == 1.0
    backend["asr"] = LengthASR("fake-b")  # another ASR: every row, and the summary, says so
    computed, rows, summary = evaluate(lines)
    assert computed == 2 and {r["wer_backend"] for r in rows.values()} == {"fake-b"}
    assert summary["backends"]["asr"] == "fake-b" and summary["protocol"]["asr"] == {"name": "fake-b"}
    assert summary["protocol"]["normaliser"]["digest"] and summary["models"] == {"unknown (no record)": 2}

    # ground truth given, then taken away: the recomputed row does not keep the old similarity
    with_truth = [{**x, "reference_audio": "truth.wav"} for x in lines]
    computed, rows, _ = evaluate(with_truth, "wer", "spk_sim")
    assert computed == 2 and rows["a"]["spk_sim_reference"] != ""
    sf.write(tmp_path / "truth.wav", tone(1.0, 400), SR)  # the ground-truth file changed
    assert evaluate(with_truth, "wer", "spk_sim")[0] == 2
    computed, rows, _ = evaluate(lines, "wer", "spk_sim")
    assert computed == 2 and rows["a"]["spk_sim_reference"] == "" and "no reference audio" in rows["a"]["note"]

    # records from two exports: the summary and results.md say the scores mix systems
    for name, digest in (("a", "model-one"), ("b", "model-two")):
        record = {"mode": "cross-sentence", "sampling_rate": SR, "prompt_samples": 0, "prompt_input_samples": SR,
                  "model": {"path": "x", "digest": digest}, "text": "one one" if name == "a" else "other words",
                  "at_context": name == "b"}
        (gen / f"{name}.wav.json").write_text(json.dumps(record))
    computed, rows, summary = evaluate(lines)
    assert computed == 2 and rows["a"]["model"] == "model-one" and rows["a"]["audio_sha256"]
    assert rows["a"]["note"] == "" and "synthesized from another text ('other words')" in rows["b"]["note"]
    assert "filled the model's context" in rows["b"]["note"]
    assert summary["models"] == {"model-one": 1, "model-two": 1}
    assert "Mixed systems" in (tmp_path / "r" / "results.md").read_text()
    # a record whose audio digest is not the WAV's (the WAV was replaced afterwards) is not taken as its record
    record["audio_sha256"] = "0" * 16
    (gen / "b.wav.json").write_text(json.dumps(record))
    _, rows, summary = evaluate(lines)
    assert "describes other audio" in summary["skipped"]["b"] and set(rows) >= {"a"}
    assert summary["num_utterances"] == 1


def test_evaluate_tts_too_short_or_silent_clips_have_no_speaker_or_quality_score(tmp_path, monkeypatch):
    """F12: a clip under MIN_SCORED_SECONDS or digitally silent gets NaN speaker similarity and quality, with a
    note, instead of a plausible number (or a crash in the speaker encoder); WER is still computed."""
    import soundfile as sf

    from evaluation import evaluate_tts
    from evaluation.asr import ASRBackend
    from evaluation.speaker import SpeakerEncoder

    class EmptyASR(ASRBackend):
        name = "empty"

        def transcribe(self, audio, sampling_rate):
            return ""

    class FlatEncoder(SpeakerEncoder):
        name = "flat"

        def embed(self, audio, sampling_rate):
            return np.array([1.0, 0.5])

    monkeypatch.setattr(evaluate_tts, "get_asr", lambda spec, language: EmptyASR())
    monkeypatch.setattr(evaluate_tts, "get_speaker_encoder", lambda spec: FlatEncoder())
    gen = tmp_path / "gen"
    gen.mkdir()
    sf.write(gen / "silent.wav", np.zeros(SR, np.float32), SR)
    sf.write(gen / "short.wav", 0.3 * np.ones(10, np.float32), SR)
    sf.write(tmp_path / "p.wav", 0.3 * np.sin(np.arange(SR) / 5).astype(np.float32), SR)
    lines = [{"id": i, "text": "hello", "prompt_audio": "p.wav"} for i in ("silent", "short")]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert evaluate_tts.main(["--generated", str(gen), "--reference", str(tmp_path / "m.jsonl"), "--out",
                              str(tmp_path / "r"), "--metrics", "wer", "spk_sim", "--num-examples", "0"]) == 0
    rows = {r["id"]: r for r in _read_csv(tmp_path / "r" / "per_utterance.csv")}
    assert rows["silent"]["spk_sim_prompt"] == "nan" and "is silent" in rows["silent"]["note"]
    assert rows["short"]["spk_sim_prompt"] == "nan" and "0.00 s long" in rows["short"]["note"]
    assert float(rows["silent"]["wer"]) == 1.0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["metrics"]["spk_sim_prompt"]["n"] == 0 and summary["metrics"]["wer"]["n"] == 2


def test_evaluate_tts_bad_options_and_fields_are_one_line(tmp_path, capsys):
    """F13 / F9-like values for evaluate-tts (tts-adversarial-3 classes): --max-utterances 0 or -1 (which
    silently dropped the last line), a negative --num-examples, --out a file or under one, an audio field that
    is not a string: one line each, before any backend is loaded."""
    from evaluation.evaluate_tts import main

    gen = tmp_path / "gen"
    gen.mkdir()
    (tmp_path / "file").write_text("x")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": "a", "text": "hello"}) + "\n")
    base = ["--generated", str(gen), "--reference", str(manifest)]
    cases = [(["--out", str(tmp_path / "r"), "--max-utterances", "-1"], "--max-utterances must be >= 1"),
             (["--out", str(tmp_path / "r"), "--max-utterances", "0"], "--max-utterances must be >= 1"),
             (["--out", str(tmp_path / "r"), "--num-examples", "-2"], "--num-examples must be >= 0"),
             (["--out", str(tmp_path / "file")], "is a file, not a folder"),
             (["--out", str(tmp_path / "file" / "r")], "is a file, not a folder")]
    for argv, needle in cases:
        capsys.readouterr()
        assert main([*base, *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], (argv, err)
    manifest.write_text(json.dumps({"id": "a", "text": "hello", "reference_audio": 5}) + "\n")
    assert main([*base, "--out", str(tmp_path / "r")]) == 2
    assert "reference_audio must be a string" in capsys.readouterr().err


def test_evaluate_tts_unwritable_out_is_one_line(tmp_path, capsys, monkeypatch):
    """F13: --out on a read-only mount is one line (was an OSError traceback)."""
    import errno
    from pathlib import Path

    import soundfile as sf

    from evaluation import evaluate_tts
    from evaluation.asr import ASRBackend

    class NoASR(ASRBackend):
        name = "none"

        def transcribe(self, audio, sampling_rate):
            return ""

    monkeypatch.setattr(evaluate_tts, "get_asr", lambda spec, language: NoASR())
    gen = tmp_path / "gen"
    gen.mkdir()
    sf.write(gen / "a.wav", np.zeros(SR, np.float32), SR)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "text": "hello"}) + "\n")
    mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if "ro" in self.parts:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert evaluate_tts.main(["--generated", str(gen), "--reference", str(tmp_path / "m.jsonl"), "--out",
                              str(tmp_path / "ro"), "--metrics", "wer"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write there (Read-only file system)" in err[0]


def test_evaluate_tts_recomputes_exactly_the_numbers_whose_inputs_changed(tmp_path, monkeypatch, capsys):
    """Deliverable 2 of issue 31: the provenance is kept per group of columns (WER, speaker similarity,
    quality), so another speaker backend re-embeds and does not re-transcribe, another reference text
    re-transcribes and does not re-embed, another prompt file re-embeds only; the unchanged numbers stay."""
    import soundfile as sf

    from evaluation import evaluate_tts
    from evaluation.asr import ASRBackend
    from evaluation.speaker import SpeakerEncoder

    calls = {"asr": 0, "embed": 0}

    class CountingASR(ASRBackend):
        name = "counting-asr"

        def transcribe(self, audio, sampling_rate):
            calls["asr"] += 1
            return "one two"

    class CountingEncoder(SpeakerEncoder):
        def __init__(self, name):
            self.name = name

        def embed(self, audio, sampling_rate):
            calls["embed"] += 1
            return np.array([1.0, float(np.abs(audio).mean())])

    speaker = {"encoder": CountingEncoder("enc-a")}
    monkeypatch.setattr(evaluate_tts, "get_asr", lambda spec, language: CountingASR())
    monkeypatch.setattr(evaluate_tts, "get_speaker_encoder", lambda spec: speaker["encoder"])
    gen = tmp_path / "gen"
    gen.mkdir()
    tone = 0.3 * np.sin(2 * np.pi * 200 * np.arange(SR) / SR)
    for name in ("a", "b"):
        sf.write(gen / f"{name}.wav", tone, SR)
    sf.write(tmp_path / "p.wav", tone * 0.5, SR)
    manifest = tmp_path / "m.jsonl"

    def evaluate(texts):
        manifest.write_text("".join(json.dumps({"id": i, "text": t, "prompt_audio": "p.wav"}) + "\n"
                                    for i, t in zip("ab", texts)))
        calls.update(asr=0, embed=0)
        capsys.readouterr()
        assert evaluate_tts.main(["--generated", str(gen), "--reference", str(manifest), "--out", str(tmp_path / "r"),
                                  "--metrics", "wer", "spk_sim", "--num-examples", "0"]) == 0
        rows = {r["id"]: r for r in _read_csv(tmp_path / "r" / "per_utterance.csv")}
        return dict(calls), rows, capsys.readouterr().out

    counted, rows, _ = evaluate(["one two", "one two"])
    assert counted == {"asr": 2, "embed": 4} and float(rows["a"]["wer"]) == 0
    assert evaluate(["one two", "one two"])[0] == {"asr": 0, "embed": 0}
    speaker["encoder"] = CountingEncoder("enc-b")  # another speaker model: similarity only
    counted, rows, out = evaluate(["one two", "one two"])
    assert counted == {"asr": 0, "embed": 4} and rows["a"]["spk_backend"] == "enc-b" and float(rows["a"]["wer"]) == 0
    assert "2 computed: wer 0, spk 2" in out
    counted, rows, out = evaluate(["one two", "three"])  # b's text: its WER only
    assert counted == {"asr": 1, "embed": 0} and float(rows["b"]["wer"]) == 2.0 and rows["b"]["text"] == "three"
    assert rows["b"]["spk_sim_prompt"] == rows["a"]["spk_sim_prompt"] != ""
    sf.write(tmp_path / "p.wav", tone * 0.25, SR)  # the prompt file changed: similarity only
    counted, rows, _ = evaluate(["one two", "three"])
    assert counted == {"asr": 0, "embed": 4}
    sf.write(gen / "a.wav", tone[: SR // 2], SR)  # a's audio changed: everything of a
    counted, rows, _ = evaluate(["one two", "three"])
    assert counted == {"asr": 1, "embed": 2} and float(rows["a"]["duration_s"]) == 0.5
    provenance = json.loads(rows["a"]["provenance"])
    assert set(provenance) == {"base", "wer", "spk"} and all(len(v) == 16 for v in provenance.values())
