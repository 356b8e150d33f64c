"""Training crops for the codec trainer from the utterances its CLI lists (any `data_prep` corpus or a
plain folder of audio; this module takes `Utterance`-like objects with `id`, `speaker`, `audio`).

Audio goes through the one audio path (`tokenizer.audio`: read, mix to mono, resample to the codec
rate). Each utterance is scaled to an RMS of `target_dbfs`; each crop then gets a random gain of
+-`gain_db` dB and is scaled down when its peak exceeds `peak`. Silence is kept (no VAD trimming).
With `speed_factors`, each crop is also played at a factor drawn from them (`speed_perturb`).

Sampling is a pure function of (seed, step, micro-batch, rank): a resumed run draws the same crops as an
uninterrupted one, and each process of a multi-process run draws its own. Utterances are drawn with
probability proportional to their duration (every second of audio is equally likely), crop starts
uniformly; utterances shorter than a segment are zero-padded and their true length is returned.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from tokenizer.audio import audio_info, load_mono
from tokenizer.utils.errors import AudioError, ConfigError

from .config import DataConfig

logger = logging.getLogger(__name__)


def speed_tenths(factor: float) -> int:
    """A speed factor as a whole number of tenths (10 x factor), ConfigError unless it is a multiple of 0.1
    in [0.5, 2]."""
    tenths = int(round(float(factor) * 10))
    if not (5 <= tenths <= 20 and abs(tenths - float(factor) * 10) < 1e-9):
        raise ConfigError(f"data.speed_factors: {factor} must be a multiple of 0.1 in [0.5, 2]")
    return tenths


def speed_perturb(audio: np.ndarray, factor: float, max_samples: int) -> np.ndarray:
    """`audio` played `factor` times as fast (len / factor samples, at most `max_samples`): polyphase
    resampling by the ratio 1/factor in tenths (scipy's anti-aliased `resample_poly`); factor 1 returns the
    input."""
    if factor == 1.0 or len(audio) == 0:
        return audio[:max_samples]
    from scipy.signal import resample_poly

    return resample_poly(audio, 10, speed_tenths(factor)).astype(np.float32)[:max_samples]


@dataclass
class Item:
    """One utterance: `source` is a path or encoded bytes; `audio` the decoded mono float32 samples at the
    codec rate once loaded (normalised to the target RMS); `num_samples` at the codec rate."""

    id: str
    speaker: str
    source: str | bytes
    num_samples: int
    audio: np.ndarray | None = None


def filename_speaker(name: str) -> str:
    """'103-1240-0000.flac' -> '103' (the prefix before the first '-' or '_')."""
    return re.split(r"[-_]", Path(name).stem, maxsplit=1)[0]


def split_speakers(speakers: list[str], holdout: int | list) -> tuple[set[str], set[str]]:
    """(train, held-out) speaker sets: the last N sorted speakers, or the listed ones."""
    ordered = sorted(set(speakers))
    if isinstance(holdout, int):
        if not 0 <= holdout < len(ordered):
            raise ConfigError(f"data.holdout_speakers={holdout} must be in [0, {len(ordered) - 1}] "
                              f"({len(ordered)} speakers)")
        held = set(ordered[len(ordered) - holdout:]) if holdout else set()
    else:
        held = {str(s) for s in holdout}
        unknown = sorted(held - set(ordered))
        if unknown:
            raise ConfigError(f"data.holdout_speakers lists unknown speaker(s) {unknown}; "
                              f"known: {', '.join(ordered[:20])}{' ...' if len(ordered) > 20 else ''}")
        if held == set(ordered):
            raise ConfigError("data.holdout_speakers holds out every speaker: nothing left to train on")
    return set(ordered) - held, held


def normalize_rms(audio: np.ndarray, target_dbfs: float) -> np.ndarray:
    """Scale to an RMS of `target_dbfs` dB re full scale (digital silence stays silent)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    if rms < 1e-8:
        return audio
    return (audio * (10 ** (target_dbfs / 20) / rms)).astype(np.float32)


class CodecData:
    """Lists a corpus, splits off held-out speakers and serves deterministic crops.

    `batch(step, micro, rank)` -> (audio FloatTensor (B, 1, S), lengths LongTensor (B,)) with
    S = round(segment_seconds x sampling_rate); `eval_clips()` -> list of (id, 1-D float32 array).
    """

    def __init__(self, utterances: Iterable, cfg: DataConfig, sampling_rate: int, seed: int = 0,
                 show_progress: bool = True):
        self.cfg, self.sampling_rate, self.seed = cfg, sampling_rate, seed
        self.segment = int(round(cfg.segment_seconds * sampling_rate))
        utts = list(utterances)
        if not utts:
            raise ConfigError(f"data: corpus {cfg.corpus!r} at {cfg.root} has no usable utterances")
        for f in cfg.speed_factors:
            speed_tenths(f)
        speakers = []
        for u in utts:
            name = u.audio if isinstance(u.audio, str) else u.id
            speakers.append(filename_speaker(name) if cfg.speaker_from_filename else u.speaker)
        train_spk, held_spk = split_speakers(speakers, cfg.holdout_speakers)
        self.train_items = [Item(u.id, s, u.audio, 0) for u, s in zip(utts, speakers) if s in train_spk]
        self.eval_items = [Item(u.id, s, u.audio, 0) for u, s in zip(utts, speakers) if s in held_spk]
        self.train_speakers, self.held_out_speakers = sorted(train_spk), sorted(held_spk)
        self._eval_pool = self.eval_items[: cfg.eval_items] if self.eval_items else self.train_items[: cfg.eval_items]
        if not self.eval_items:
            logger.warning("no held-out speakers: evaluation uses the first %d training utterances", cfg.eval_items)
        # A corrupt or empty file among thousands is reported and skipped, never fatal.
        self.skipped: list[tuple[str, str]] = []
        usable = []
        for item in tqdm(self.train_items, desc="loading audio", disable=not show_progress, leave=False):
            try:
                if cfg.preload:
                    item.audio = self._decode(item)
                    item.num_samples = len(item.audio)
                else:
                    seconds, _ = audio_info(item.source) if isinstance(item.source, str) else (None, None)
                    if seconds is None or seconds <= 0:
                        item.audio = self._decode(item)
                        seconds = len(item.audio) / sampling_rate
                    item.num_samples = int(round(seconds * sampling_rate))
            except AudioError as exc:
                self.skipped.append((str(item.source) if isinstance(item.source, str) else item.id, str(exc)))
                continue
            usable.append(item)
        if self.skipped:
            logger.warning("skipped %d unusable training files, e.g. %s", len(self.skipped), self.skipped[0][1])
        self.train_items = usable
        if not self.train_items:
            raise ConfigError(f"data: no readable training audio under {cfg.root}")
        lengths = np.array([it.num_samples for it in self.train_items], dtype=np.float64)
        self._weights = lengths / lengths.sum()
        self._eval_clips: list[tuple[str, np.ndarray]] | None = None

    @property
    def train_seconds(self) -> float:
        return float(sum(it.num_samples for it in self.train_items)) / self.sampling_rate

    def _decode(self, item: Item) -> np.ndarray:
        """Mono float32 samples at the codec rate, RMS-normalised (raises AudioError naming the file)."""
        audio, _ = load_mono(item.source, self.sampling_rate, name=item.id)
        return normalize_rms(np.ascontiguousarray(audio, dtype=np.float32), self.cfg.target_dbfs)

    def batch(self, step: int, micro: int = 0, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops of micro-batch `micro` of optimizer step `step` on process `rank` (deterministic)."""
        rng = np.random.default_rng([self.seed, step, micro, rank])
        B, S = self.cfg.batch_size, self.segment
        audio = np.zeros((B, 1, S), dtype=np.float32)
        lengths = np.zeros(B, dtype=np.int64)
        picks = rng.choice(len(self.train_items), size=B, p=self._weights)
        for b, i in enumerate(picks):
            item = self.train_items[i]
            full = item.audio if item.audio is not None else self._decode(item)
            factor = float(rng.choice(self.cfg.speed_factors)) if self.cfg.speed_factors else 1.0
            L = int(round(S * factor))
            start = int(rng.integers(0, max(len(full) - L, 0) + 1))
            crop = speed_perturb(full[start:start + L], factor, S) * np.float32(10 ** (rng.uniform(-self.cfg.gain_db, self.cfg.gain_db) / 20))
            peak = float(np.abs(crop).max()) if len(crop) else 0.0
            if peak > self.cfg.peak:
                crop = crop * np.float32(self.cfg.peak / peak)
            audio[b, 0, : len(crop)] = crop
            lengths[b] = len(crop)
        return torch.from_numpy(audio), torch.from_numpy(lengths)

    def eval_clips(self) -> list[tuple[str, np.ndarray]]:
        """The evaluation clips: the first `eval_seconds` of the first `eval_items` held-out utterances
        (sorted corpus order), at the target RMS, no random gain."""
        if self._eval_clips is not None:
            return self._eval_clips
        n = int(round(self.cfg.eval_seconds * self.sampling_rate))
        clips = []
        for item in self._eval_pool:
            audio = item.audio if item.audio is not None else self._decode(item)
            clip = audio[:n]
            peak = float(np.abs(clip).max())
            clips.append((item.id, clip * np.float32(min(1.0, self.cfg.peak / peak)) if peak > 0 else clip))
        self._eval_clips = clips
        return clips


class StepBatches(Dataset):
    """Micro-batch i = step x grad_accum_steps + micro as a map-style dataset, so a `DataLoader` with
    workers can prepare crops ahead while resuming stays exact: its sampler is just a range of indices."""

    def __init__(self, data: CodecData, grad_accum_steps: int, rank: int, total_steps: int):
        self.data, self.accum, self.rank, self.total = data, grad_accum_steps, rank, total_steps

    def __len__(self) -> int:
        return self.total * self.accum

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        step, micro = divmod(int(i), self.accum)
        return self.data.batch(step, micro, self.rank)
