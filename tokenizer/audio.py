"""The one audio loading path every entry point uses: read, mix to mono, resample, validate, pad.

Reading goes through `soundfile` (libsndfile: WAV, FLAC, OGG/Vorbis, MP3...) and resampling through
`soxr` (the SoX resampler, HQ quality), so the tokenizer, the corpus CLI and the trainers all see the
same samples for the same file.
"""

from __future__ import annotations

import functools
import io
import numbers
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import soundfile as sf
import soxr
import torch

from .utils.errors import AudioError

PathLike = Union[str, os.PathLike]
AudioSource = Union[PathLike, bytes]
AudioInput = Union[np.ndarray, torch.Tensor, PathLike, Sequence[Union[np.ndarray, torch.Tensor, PathLike]]]

# A 2-D clip's channel dimension is the one of at most this size (6 for 5.1, 8 for 7.1, 16 for small arrays).
MAX_CHANNELS = 16
# Float audio lives in [-1, 1]; a little over 1 is clipping headroom, but a peak above this is unscaled
# integer PCM or a corrupt file (near 1e15 the codebook distances overflow and every code becomes 0).
MAX_PEAK = 100.0
# Rates outside this range are typos (16 for 16000 would upsample 1000x) or a corrupt header.
MIN_RATE, MAX_RATE = 1000, 1_000_000
# Integer PCM -> float as soundfile/libsndfile read it: (x - offset) / scale.
_PCM = {np.dtype(np.int8): (0, 2**7), np.dtype(np.int16): (0, 2**15), np.dtype(np.int32): (0, 2**31),
        np.dtype(np.uint8): (2**7, 2**7)}


# Extensions files of a libsndfile format commonly carry besides the format's own name (".aiff", ".wav"...).
_SUFFIX_ALIASES = {"AIFF": (".aif", ".aifc"), "WAV": (".wave",), "OGG": (".oga", ".opus"), "NIST": (".sph",),
                   "AU": (".snd",), "SVX": (".iff", ".8svx"), "IRCAM": (".sf",)}


@functools.cache
def readable_suffixes() -> frozenset[str]:
    """Lower-case file extensions (".wav", ".flac", ".opus", ".aif"...) of the formats the installed
    libsndfile reads (`soundfile.available_formats()`, headerless RAW excepted) and their usual aliases."""
    formats = set(sf.available_formats()) - {"RAW"}
    return frozenset({f".{name.lower()}" for name in formats}
                     | {alias for name in formats for alias in _SUFFIX_ALIASES.get(name, ())})


def load_audio(source: AudioSource, name: str | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file (a path, or the file's bytes) as float32 `(C, T)` in [-1, 1] and its rate in Hz.

    Raises `AudioError` naming the file when it cannot be read, holds no samples, or is truncated or
    damaged (see `check_complete`): a damaged file decodes to less audio than its transcript speaks.
    """
    label = name or (f"<{len(source)} bytes>" if isinstance(source, (bytes, bytearray)) else str(source))
    if not isinstance(source, (bytes, bytearray)) and not Path(source).is_file():
        raise AudioError(f"audio file not found: {label}")
    try:
        handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
        with sf.SoundFile(handle) as f:
            declared, fmt, sr = f.frames, f.format, f.samplerate
            data = f.read(dtype="float32", always_2d=True)
            log = f.extra_info  # libsndfile's notes on the header and the decode so far
    except Exception as exc:  # libsndfile raises several types; all mean "unreadable"
        raise AudioError(f"cannot read audio {label}: {exc}") from exc
    if data.shape[0] == 0:
        raise AudioError(f"audio {label} is empty (0 samples)")
    check_rate(sr, f"audio {label}: header")
    check_complete(source, label, fmt, declared, data.shape[0], log)
    return np.ascontiguousarray(data.T), int(sr)


# Sizes that streaming writers put in a header before they know the length (ffmpeg to a pipe writes
# 0xFFFFFFFF, others 0x7FFFFFFF or a little less): no claim about the length, so never "truncated".
_UNKNOWN_SIZE = 0x7FFF0000
# libsndfile notes a chunk whose declared size exceeds what the file holds as "data : 176560 (should be 88258)".
_CHUNK_SHORT = re.compile(r"^\s*(data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# ... and damaged Ogg pages as "Corrupted bitstream" / "libogg reports a hole".
_OGG_DAMAGE = re.compile(r"Corrupted bitstream|reports a hole")


def check_complete(source: AudioSource, label: str, fmt: str, declared: int, decoded: int, log: str) -> None:
    """Raise `AudioError` when a file decoded to less audio than it declares.

    Checks, all from what the file itself states: fewer frames decoded than the header or stream declares
    (MP3 frame counts, FLAC STREAMINFO, Ogg granule positions); a WAV/AIFF data chunk whose header size
    exceeds the bytes present (libsndfile reads what is there and notes the shortfall in its log); Ogg
    pages that libogg had to skip; an Ogg stream that stops before its end-of-stream page (cut off).
    """
    if 0 < declared < 2**62 and decoded < declared:  # 2**62: libsndfile's "length unknown"
        raise AudioError(f"audio {label} is truncated or damaged: its header declares {declared} frames, "
                         f"only {decoded} could be decoded")
    for chunk, claimed, present in _CHUNK_SHORT.findall(log):
        if int(present) < int(claimed) < _UNKNOWN_SIZE:
            raise AudioError(f"audio {label} is truncated: its {chunk} chunk declares {claimed} bytes, "
                             f"the file holds {present}")
    if fmt == "OGG":
        if _OGG_DAMAGE.search(log):
            raise AudioError(f"audio {label} is damaged: corrupted Ogg pages were skipped while decoding")
        problem = _ogg_end_problem(source)
        if problem:
            raise AudioError(f"audio {label} is truncated: {problem}")


def _ogg_end_problem(source: AudioSource) -> str | None:
    """Walk the Ogg page headers (27 bytes + segment table each, bodies skipped) and say what is wrong
    with the end of the stream, or None when the last page is complete and flagged end-of-stream."""
    with (io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb")) as f:
        size = f.seek(0, io.SEEK_END)
        pos, last_flags = 0, None
        while pos < size:
            f.seek(pos)
            head = f.read(27)
            if len(head) < 27 or head[:4] != b"OggS":
                if last_flags is not None and last_flags & 0x04:
                    break  # bytes after a finished stream (a tag some tools append) lose no audio
                return f"no Ogg page where one should start (byte {pos} of {size})"
            segments = f.read(head[26])
            end = pos + 27 + len(segments) + sum(segments)
            if len(segments) < head[26] or end > size:
                return f"the last Ogg page is cut off (byte {pos} of {size})"
            pos, last_flags = end, head[5]
    if last_flags is None or not last_flags & 0x04:
        return "the Ogg stream ends without its end-of-stream page"
    return None


def audio_info(path: PathLike) -> tuple[float, int]:
    """Duration in seconds and sampling rate of a file, read from its header only."""
    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise AudioError(f"cannot read audio header of {path}: {exc}") from exc
    return info.frames / info.samplerate, int(info.samplerate)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """`(C, T)` or `(T,)` -> `(T,)` by averaging channels."""
    return audio if audio.ndim == 1 else audio.mean(axis=0)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a 1-D float signal with soxr (HQ). Identity when the rates match."""
    if orig_sr == target_sr:
        return audio
    if orig_sr <= 0:
        raise AudioError(f"sampling rate must be positive, got {orig_sr}")
    return soxr.resample(audio, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def check_samples(audio: np.ndarray, label: str) -> None:
    """Raise `AudioError` naming `label` for empty audio, NaN/inf samples or a peak above `MAX_PEAK`."""
    if audio.size == 0:
        raise AudioError(f"audio {label} is empty (0 samples)")
    if not np.isfinite(audio).all():
        bad = int((~np.isfinite(audio)).sum())
        raise AudioError(f"audio {label} has {bad} NaN/inf samples")
    peak = float(np.abs(audio).max())
    if peak > MAX_PEAK:
        raise AudioError(f"audio {label} has peak amplitude {peak:.6g}; float audio must be in [-1, 1] (likely "
                         "unscaled integer PCM: divide int16 by 32768 or pass the int16 array itself; or a corrupt file)")


def check_rate(rate, what: str) -> int:
    """`rate` as an int number of Hz in [`MIN_RATE`, `MAX_RATE`], else `AudioError` naming `what`."""
    if isinstance(rate, bool) or not isinstance(rate, (numbers.Integral, float)) or rate != rate or (
            isinstance(rate, float) and not rate.is_integer()):
        raise AudioError(f"{what} sampling_rate must be a whole number of Hz, got {rate!r}")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"{what} sampling_rate={rate!r} Hz is implausible (expected {MIN_RATE} to {MAX_RATE} "
                         "Hz; 16 kHz is 16000)")
    return int(rate)


def load_mono(source: AudioSource, sampling_rate: int | None = None, name: str | None = None) -> tuple[np.ndarray, int]:
    """Read a file (path or bytes) as finite mono float32 `(T,)`, resampled to `sampling_rate` when given.

    Returns `(audio, rate)`. `name` labels errors about the samples (and bytes sources, which have no
    path); a path source's read errors name the path. Raises `AudioError`.
    """
    data, sr = load_audio(source, name=name if isinstance(source, (bytes, bytearray)) else None)
    audio = to_mono(data)
    label = name or str(source)
    check_samples(audio, label)
    if sampling_rate is not None and sampling_rate != sr:
        # Again after resampling: a 1-sample file can resample to nothing, a float file near 3e38 to inf.
        audio, sr = resample(audio, sr, sampling_rate), sampling_rate
        check_samples(audio, f"{label} (resampled to {sampling_rate} Hz)")
    return audio, sr


@dataclass
class AudioBatch:
    """Padded mono batch at one rate.

    audio: FloatTensor (B, 1, T) zero-padded; lengths: LongTensor (B,) true lengths in samples.
    """

    audio: torch.Tensor
    lengths: torch.Tensor
    sampling_rate: int


def _as_numpy(x: np.ndarray | torch.Tensor, label: str) -> np.ndarray:
    """Samples as float32: float kept as is, integer PCM scaled to [-1, 1] as soundfile reads it
    (int16 / 32768, int32 / 2**31, int8 / 128, (uint8 - 128) / 128); other dtypes are refused."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = (x.float() if x.is_floating_point() else x).numpy()  # bfloat16 has no numpy dtype
    arr = np.asarray(x)
    if arr.dtype.kind == "f":
        return arr.astype(np.float32, copy=False)
    if arr.dtype in _PCM:
        offset, scale = _PCM[arr.dtype]
        return (arr.astype(np.float32) - offset) / np.float32(scale)
    raise AudioError(f"audio {label} has dtype {arr.dtype}; pass float samples in [-1, 1] or integer PCM "
                     f"({', '.join(str(d) for d in _PCM)})")


def _channels_first(arr: np.ndarray, label: str) -> np.ndarray:
    """A 2-D clip as `(C, T)`. It is taken as `(C, T)` when its first dimension is at most `MAX_CHANNELS`
    and not larger than the second, else as `(T, C)` (the layout of `soundfile.read` and
    `scipy.io.wavfile.read`) when its second is at most `MAX_CHANNELS`; anything else is refused."""
    first, second = arr.shape
    if first <= MAX_CHANNELS and first <= second:
        return arr
    if second <= MAX_CHANNELS:
        return arr.T
    raise AudioError(
        f"audio {label} has shape {tuple(arr.shape)}: a 2-D array is one clip, (C, T) or (T, C) with at most "
        f"{MAX_CHANNELS} channels; pass a batch as a list of clips or a (B, C, T) array")


def _is_path(x: object) -> bool:
    return isinstance(x, (str, os.PathLike))


def prepare_audio(
    audio: AudioInput, sampling_rate: int | None, target_sr: int
) -> list[np.ndarray]:
    """Turn any accepted input into a list of mono float32 1-D arrays at `target_sr`.

    Accepted: one clip (a path, or an array/tensor `(T,)`, `(C, T)` or `(T, C)`); a batch (a list of
    clips of any lengths, or a `(B, C, T)` array/tensor). A 2-D array is always one clip, never a batch:
    its channel dimension is the one of at most `MAX_CHANNELS` (16), so the `(T, C)` arrays of
    `soundfile.read` work as they are (see `_channels_first`); channels are averaged. Float samples are
    taken as they are (expected in [-1, 1]); integer PCM (int8, int16, int32, uint8) is scaled as
    soundfile does. Files carry their own rate; arrays are taken at `sampling_rate` Hz (the codec's rate
    when None), which must be a whole number in [1000, 1000000].
    Raises `AudioError` naming the item for a wrong rank or dtype (bool, complex, int64...), an empty
    batch, empty or non-finite audio, a peak above `MAX_PEAK` (100: unscaled PCM) and unreadable,
    truncated or damaged files.
    """
    items: list[tuple[np.ndarray, int, str]] = []
    rate = target_sr if sampling_rate is None else check_rate(sampling_rate, "audio")

    def add_array(x, label: str) -> None:
        arr = _as_numpy(x, label)
        if arr.ndim == 2:
            arr = to_mono(_channels_first(arr, label))
        if arr.ndim != 1:
            raise AudioError(
                f"audio {label} has shape {tuple(arr.shape)}; pass (T,), (C, T) or (T, C) for one clip, "
                "a list of clips or a (B, C, T) array for a batch"
            )
        items.append((arr, rate, label))

    if _is_path(audio):
        audio = [audio]
    if isinstance(audio, (np.ndarray, torch.Tensor)):
        if audio.ndim == 3:
            if audio.shape[0] == 0:
                raise AudioError(f"empty batch of audio (shape {tuple(audio.shape)}): nothing to encode")
            for i in range(audio.shape[0]):
                add_array(audio[i], f"[{i}]")
        else:
            add_array(audio, "input")
    elif isinstance(audio, (list, tuple)):
        if len(audio) == 0:
            raise AudioError("empty list of audio: nothing to encode")
        for i, x in enumerate(audio):
            if _is_path(x):
                data, sr = load_audio(x)
                items.append((to_mono(data), sr, str(x)))
            elif isinstance(x, (np.ndarray, torch.Tensor)):
                add_array(x, f"[{i}]")
            else:
                raise AudioError(f"audio [{i}] has unsupported type {type(x).__name__}")
    else:
        raise AudioError(f"unsupported audio input type {type(audio).__name__}")

    out = []
    for arr, sr, label in items:
        check_samples(arr, label)
        if sr != target_sr:
            arr = resample(arr, sr, target_sr)
            check_samples(arr, f"{label} (resampled to {target_sr} Hz)")
        out.append(np.ascontiguousarray(arr, dtype=np.float32))
    return out


def pad_batch(clips: Sequence[np.ndarray], sampling_rate: int, multiple: int = 1, min_length: int = 0) -> AudioBatch:
    """Zero-pad 1-D clips to one length (rounded up to `multiple`) -> `AudioBatch` (B, 1, T)."""
    lengths = torch.tensor([len(c) for c in clips], dtype=torch.long)
    total = max(int(lengths.max()), min_length)
    total = -(-total // multiple) * multiple
    audio = torch.zeros(len(clips), 1, total)
    for i, c in enumerate(clips):
        audio[i, 0, : len(c)] = torch.from_numpy(c)
    return AudioBatch(audio=audio, lengths=lengths, sampling_rate=sampling_rate)
