"""The one audio loading path every entry point uses: read, mix to mono, resample, validate, pad.

Reading goes through `soundfile` (libsndfile: WAV, FLAC, OGG/Vorbis, MP3...) and resampling through
`soxr` (the SoX resampler, HQ quality), so the tokenizer, the corpus CLI and the trainers all see the
same samples for the same file.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import soundfile as sf
import soxr
import torch

from .errors import AudioError

PathLike = Union[str, os.PathLike]
AudioSource = Union[PathLike, bytes]
AudioInput = Union[np.ndarray, torch.Tensor, PathLike, Sequence[Union[np.ndarray, torch.Tensor, PathLike]]]


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


def check_finite(audio: np.ndarray, label: str) -> None:
    if audio.size == 0:
        raise AudioError(f"audio {label} is empty (0 samples)")
    if not np.isfinite(audio).all():
        bad = int((~np.isfinite(audio)).sum())
        raise AudioError(f"audio {label} has {bad} NaN/inf samples")


def load_mono(source: AudioSource, sampling_rate: int | None = None, name: str | None = None) -> tuple[np.ndarray, int]:
    """Read a file (path or bytes) as finite mono float32 `(T,)`, resampled to `sampling_rate` when given.

    Returns `(audio, rate)`. `name` labels errors about the samples (and bytes sources, which have no
    path); a path source's read errors name the path. Raises `AudioError`.
    """
    data, sr = load_audio(source, name=name if isinstance(source, (bytes, bytearray)) else None)
    audio = to_mono(data)
    check_finite(audio, name or str(source))
    if sampling_rate is not None:
        audio, sr = resample(audio, sr, sampling_rate), sampling_rate
    return audio, sr


@dataclass
class AudioBatch:
    """Padded mono batch at one rate.

    audio: FloatTensor (B, 1, T) zero-padded; lengths: LongTensor (B,) true lengths in samples.
    """

    audio: torch.Tensor
    lengths: torch.Tensor
    sampling_rate: int


def _as_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    return np.asarray(x, dtype=np.float32)


def _is_path(x: object) -> bool:
    return isinstance(x, (str, os.PathLike))


def prepare_audio(
    audio: AudioInput, sampling_rate: int | None, target_sr: int
) -> list[np.ndarray]:
    """Turn any accepted input into a list of mono float32 1-D arrays at `target_sr`.

    Accepted: a 1-D array/tensor `(T,)`; a 3-D `(B, C, T)` array/tensor; a path; a list of 1-D arrays,
    `(C, T)` arrays or paths. Files carry their own rate; arrays are taken at `sampling_rate`
    (the codec's rate when None). Raises `AudioError` for a wrong rank, empty or non-finite audio and
    unreadable files, naming the item.
    """
    items: list[tuple[np.ndarray, int, str]] = []
    rate = target_sr if sampling_rate is None else int(sampling_rate)

    def add_array(x, label: str, allow_channels: bool) -> None:
        arr = _as_numpy(x)
        if arr.ndim == 2 and allow_channels:
            arr = to_mono(arr)
        if arr.ndim != 1:
            raise AudioError(
                f"audio {label} has shape {tuple(arr.shape)}; pass (T,) for one clip, (B, C, T) for a "
                "batch, or a list of (T,) / (C, T) arrays or file paths"
            )
        items.append((arr, rate, label))

    if _is_path(audio):
        audio = [audio]
    if isinstance(audio, (np.ndarray, torch.Tensor)):
        if audio.ndim == 3:
            for i in range(audio.shape[0]):
                add_array(audio[i], f"[{i}]", allow_channels=True)
        else:
            add_array(audio, "input", allow_channels=False)
    elif isinstance(audio, (list, tuple)):
        if len(audio) == 0:
            raise AudioError("empty list of audio: nothing to encode")
        for i, x in enumerate(audio):
            if _is_path(x):
                data, sr = load_audio(x)
                items.append((to_mono(data), sr, str(x)))
            elif isinstance(x, (np.ndarray, torch.Tensor)):
                add_array(x, f"[{i}]", allow_channels=True)
            else:
                raise AudioError(f"audio [{i}] has unsupported type {type(x).__name__}")
    else:
        raise AudioError(f"unsupported audio input type {type(audio).__name__}")

    out = []
    for arr, sr, label in items:
        check_finite(arr, label)
        out.append(np.ascontiguousarray(resample(arr, sr, target_sr), dtype=np.float32))
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
