"""Inputs that must never turn into quietly wrong audio: damaged files, odd array layouts and dtypes."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf

from tokenizer.audio import load_audio, load_mono
from tokenizer.errors import AudioError

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
