"""Inputs that must never turn into quietly wrong audio: damaged files, odd array layouts and dtypes."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf

import torch

from tokenizer.audio import load_audio, load_mono, prepare_audio
from tokenizer.utils.errors import AudioError

SR = 16000


def speech_like(seconds: float = 2.0, sr: int = SR) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 0.5 * t)
            + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)


def encoded(fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, speech_like(), SR, format=fmt, subtype=subtype)
    return buf.getvalue()


def data_chunk(wav: bytes) -> int:
    """Offset of the 'data' chunk id in a WAV file."""
    return wav.index(b"data")


# -- truncated or damaged files ----------------------------------------------------------------------


def test_wav_whose_data_chunk_claims_more_than_the_file_holds(tmp_path):
    wav = bytearray(encoded("WAV", "PCM_16"))
    i = data_chunk(wav)
    size = struct.unpack("<I", wav[i + 4 : i + 8])[0]
    wav[i + 4 : i + 8] = struct.pack("<I", 2 * size)  # header claims twice the frames
    (tmp_path / "claims.wav").write_bytes(wav)
    with pytest.raises(AudioError, match=rf"claims.wav is truncated: its data chunk declares {2 * size} bytes, "
                                         rf"the file holds {size}"):
        load_audio(tmp_path / "claims.wav")
    cut = bytes(encoded("WAV", "PCM_16")[: i + 8 + size // 2])  # a copy that stopped half way
    (tmp_path / "cut.wav").write_bytes(cut)
    with pytest.raises(AudioError, match="cut.wav is truncated"):
        load_mono(tmp_path / "cut.wav", 16000)
    with pytest.raises(AudioError, match="utt7 is truncated"):  # bytes sources are named by their utterance
        load_mono(cut, name="utt7")


def test_streaming_wav_with_placeholder_size_is_accepted(tmp_path):
    # ffmpeg writing to a pipe cannot seek back, so it leaves 0xFFFFFFFF as the data size: not truncated.
    wav = bytearray(encoded("WAV", "PCM_16"))
    i = data_chunk(wav)
    for placeholder in (0xFFFFFFFF, 0x7FFFFFFF):
        wav[i + 4 : i + 8] = struct.pack("<I", placeholder)
        audio, sr = load_audio(bytes(wav))
        assert audio.shape == (1, 2 * SR) and sr == SR


def test_truncated_aiff(tmp_path):
    aiff = encoded("AIFF", "PCM_16")
    with pytest.raises(AudioError, match="truncated: its SSND chunk declares"):
        load_audio(aiff[: len(aiff) // 2], name="a.aiff")


def test_damaged_or_truncated_ogg(tmp_path):
    ogg = encoded("OGG", "VORBIS")
    assert load_audio(ogg)[0].shape == (1, 2 * SR)
    flipped = bytearray(ogg)
    mid = len(flipped) // 2
    flipped[mid : mid + 20] = bytes(255 - b for b in flipped[mid : mid + 20])
    (tmp_path / "b.ogg").write_bytes(flipped)
    with pytest.raises(AudioError, match="b.ogg is (damaged|truncated)"):
        load_audio(tmp_path / "b.ogg")
    (tmp_path / "cut.ogg").write_bytes(ogg[: int(len(ogg) * 0.7)])
    with pytest.raises(AudioError, match="cut.ogg is truncated: the last Ogg page is cut off"):
        load_audio(tmp_path / "cut.ogg")


def test_truncated_or_garbled_mp3(tmp_path):
    mp3 = encoded("MP3")
    assert load_audio(mp3)[0].shape == (1, 2 * SR)
    (tmp_path / "cut.mp3").write_bytes(mp3[: int(len(mp3) * 0.7)])
    with pytest.raises(AudioError, match=r"cut.mp3 is truncated or damaged: its header declares 32000 frames, "
                                         r"only \d+ could be decoded"):
        load_audio(tmp_path / "cut.mp3")
    garbled = bytearray(mp3)
    start = len(garbled) // 4
    garbled[start : start + 200] = bytes(255 - b for b in garbled[start : start + 200])
    (tmp_path / "garbled.mp3").write_bytes(garbled)
    with pytest.raises(AudioError, match="garbled.mp3 is truncated or damaged"):
        load_audio(tmp_path / "garbled.mp3")


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_24"), ("WAV", "FLOAT"), ("FLAC", "PCM_16"),
                                         ("OGG", "OPUS"), ("AIFF", "PCM_16"), ("MP3", None)])
def test_intact_files_still_load(tmp_path, fmt, subtype):
    data = encoded(fmt, subtype)
    audio, sr = load_audio(data)
    assert audio.shape[0] == 1 and audio.shape[1] >= 2 * SR - 1 and sr == SR


# -- array layouts, dtypes and rates -------------------------------------------------------------------


def test_two_d_clips_follow_one_rule_alone_in_lists_and_in_batches():
    tc = np.stack([speech_like(0.1), 0.5 * speech_like(0.1)], axis=1)  # (T, 2): soundfile's layout
    mono = tc.mean(axis=1)
    for form in (tc, tc.T, [tc], [tc.T], tc[None], tc.T[None], torch.from_numpy(tc), [torch.from_numpy(tc.T)]):
        (clip,) = prepare_audio(form, SR, SR)
        np.testing.assert_array_equal(clip, mono)
    (clip,) = prepare_audio(np.ones((2, 2), np.float32) * [[0.2], [0.4]], SR, SR)  # a tie is (C, T)
    np.testing.assert_allclose(clip, [0.3, 0.3])
    for shape in [(17, 4000), (4000, 17), (17, 17)]:
        with pytest.raises(AudioError, match=rf"has shape \({shape[0]}, {shape[1]}\): a 2-D array is one clip"):
            prepare_audio([np.zeros(shape, np.float32)], SR, SR)


@pytest.mark.parametrize("dtype,offset,scale", [(np.int16, 0, 2**15), (np.int32, 0, 2**31), (np.int8, 0, 2**7),
                                                (np.uint8, 2**7, 2**7)])
def test_integer_pcm_is_scaled(dtype, offset, scale):
    info = np.iinfo(dtype)
    pcm = np.array([info.min, offset, info.max, offset + 1], dtype=dtype)
    (clip,) = prepare_audio(pcm, SR, SR)
    np.testing.assert_array_equal(clip, ((pcm.astype(np.float64) - offset) / scale).astype(np.float32))
    (clip,) = prepare_audio([torch.from_numpy(pcm)], SR, SR)
    np.testing.assert_array_equal(clip, ((pcm.astype(np.float64) - offset) / scale).astype(np.float32))


def test_pcm_scaling_matches_soundfile():
    buf = io.BytesIO()
    sf.write(buf, np.stack([speech_like(), -speech_like()], 1), SR, format="WAV", subtype="PCM_16")
    as_int, _ = sf.read(io.BytesIO(buf.getvalue()), dtype="int16")
    as_float, _ = sf.read(io.BytesIO(buf.getvalue()), dtype="float32")
    np.testing.assert_array_equal(prepare_audio([as_int], SR, SR)[0], prepare_audio([as_float], SR, SR)[0])


@pytest.mark.parametrize("bad,message", [
    (np.zeros(100, bool), "dtype bool"),
    (np.zeros(100, np.complex64), "dtype complex64"),
    (torch.zeros(100, dtype=torch.complex64), "dtype complex64"),
    (np.zeros(100, np.int64), "dtype int64"),
    (np.array(["a.wav"]), "dtype <U5"),
    (np.full(100, 32767.0), "peak amplitude 32767; float audio must be in .* unscaled integer PCM"),
    (np.full(100, 1e15, np.float32), "peak amplitude 1e\\+15"),
])
def test_unusable_dtypes_and_amplitudes_are_refused(bad, message):
    with pytest.raises(AudioError, match=f"audio input has {message}"):
        prepare_audio(bad, SR, SR)


def test_float_audio_with_headroom_is_kept():
    x = speech_like(0.1) * 4  # clipping headroom of float mixes: fine
    np.testing.assert_array_equal(prepare_audio(x, SR, SR)[0], x)


@pytest.mark.parametrize("rate,message", [(16, "sampling_rate=16 Hz is implausible"),
                                          (2_000_000, "sampling_rate=2000000 Hz is implausible"),
                                          ("16k", "must be a whole number of Hz, got '16k'"),
                                          (16000.5, "whole number"), (True, "whole number")])
def test_implausible_sampling_rates_are_refused(rate, message):
    with pytest.raises(AudioError, match=message):
        prepare_audio(speech_like(0.1), rate, SR)


def test_accepted_rate_forms():
    x = speech_like(0.1)
    for rate in (16000, 16000.0, np.int64(16000)):
        np.testing.assert_array_equal(prepare_audio(x, rate, SR)[0], x)


def test_empty_batches_are_refused():
    with pytest.raises(AudioError, match="empty list of audio"):
        prepare_audio([], SR, SR)
    with pytest.raises(AudioError, match=r"empty batch of audio \(shape \(0, 1, 100\)\)"):
        prepare_audio(np.zeros((0, 1, 100), np.float32), SR, SR)


def test_file_that_resamples_to_nothing_is_named(tmp_path):
    sf.write(tmp_path / "one.wav", np.array([0.1], np.float32), 48000)
    with pytest.raises(AudioError, match=r"one.wav \(resampled to 16000 Hz\) is empty"):
        load_mono(tmp_path / "one.wav", 16000)
    with pytest.raises(AudioError, match=r"one.wav \(resampled to 16000 Hz\) is empty"):
        prepare_audio([tmp_path / "one.wav"], None, 16000)
