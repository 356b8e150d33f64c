"""The split of the multi-voice corpus, decided before anything is written and deterministic from a seed.

Subsets (LibriTTS subset folders):

- `train`: the training voices on the training sentences.
- `test-seen-voices`: the training voices on held-out sentences (never spoken by any voice in `train`).
- `test-unseen-voices`: the held-out voices (never in `train` or `test-seen-voices`).

Sentences (synthetic voices and the Asterisk speaker, who reads the same prompt texts): a seeded shuffle
of the sentence pool puts `max(test_sentences, 20%)` of it in the held-out set. Each training synthetic
voice reads `train_sentences` training sentences and `test_sentences` held-out ones, each held-out
synthetic voice `test_sentences` held-out ones (all drawn with a per-voice seed). An Asterisk prompt goes
to `test-seen-voices` when its text is a held-out sentence.

Voices: `held_out_synthetic` synthetic voices drawn with the seed (at most all but one), and the
LibriSpeech speakers in `held_out_real` (by default the 20 the shipped codec held out). Every other
LibriSpeech speaker with at least three clips gives one seeded clip to `test-seen-voices` (Whisper's
texts are its own, so held-out "sentences" are held-out clips there).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from ..text.normalize import normalize_text
from .sources import Clip, Sentence

TRAIN, TEST_SEEN, TEST_UNSEEN = "train", "test-seen-voices", "test-unseen-voices"
SUBSETS = {
    TRAIN: "training voices, training sentences",
    TEST_SEEN: "training voices, held-out sentences (no voice speaks them in train)",
    TEST_UNSEEN: "held-out voices, never in train or test-seen-voices",
}
# The LibriSpeech-mini speakers the shipped language-codec held out (configs/codec: the last 20 ids).
HELD_OUT_LIBRISPEECH = ("8324", "839", "8419", "8425", "8465", "8468", "8580", "8609", "8629", "8630", "87", "8747",
                        "8770", "8797", "8838", "887", "89", "8975", "909", "911")
HELD_OUT_SENTENCE_SHARE = 0.2


@dataclass(frozen=True)
class Voice:
    """A synthetic voice: its speaker folder name, engine and the engine's voice name."""

    speaker: str
    engine: str
    voice: str


@dataclass(frozen=True)
class Item:
    """One utterance to write: `<subset>/<speaker>/<chapter>/<id>.wav` + `.original.txt` + `.normalized.txt`.

    source: `librispeech-mini`, `asterisk` or `synthetic`; synthetic items name `voice` and the pool index
    `sentence`, real ones their `clip`.
    """

    id: str
    subset: str
    speaker: str
    chapter: str
    original: str
    normalized: str
    text_source: str
    source: str
    voice: Voice | None = None
    sentence: int | None = None
    clip: Clip | None = None


@dataclass
class SplitPlan:
    """Everything the builder writes, and the decisions behind it."""

    items: list[Item]
    held_out_voices: list[str]
    held_out_sentences: list[int]
    notes: list[str] = field(default_factory=list)


def _key(text: str) -> str:
    return " ".join(text.lower().split())


def plan_split(pool: list[Sentence], voices: list[Voice], real: list[Clip], asterisk: list[Clip], seed: int,
               train_sentences: int, test_sentences: int, held_out_synthetic: int,
               held_out_real: tuple[str, ...] = HELD_OUT_LIBRISPEECH) -> SplitPlan:
    """Decide every item's subset (see the module docstring). Same inputs and seed, same plan."""
    notes: list[str] = []
    order = list(range(len(pool)))
    random.Random(f"{seed}:sentences").shuffle(order)
    n_test = min(len(pool), max(test_sentences, round(HELD_OUT_SENTENCE_SHARE * len(pool))))
    test_pool, train_pool = sorted(order[:n_test]), sorted(order[n_test:])

    synthetic = sorted(voices, key=lambda v: v.speaker)
    n_held = min(held_out_synthetic, max(len(synthetic) - 1, 0))
    if n_held < held_out_synthetic and synthetic:
        notes.append(f"only {len(synthetic)} synthetic voices: {n_held} held out instead of {held_out_synthetic}")
    shuffled = synthetic[:]
    random.Random(f"{seed}:voices").shuffle(shuffled)
    held = {v.speaker for v in shuffled[:n_held]}

    items: list[Item] = []
    for v in synthetic:
        rng = random.Random(f"{seed}:{v.speaker}")
        picks = [] if v.speaker in held else [(TRAIN, i) for i in rng.sample(train_pool, min(train_sentences, len(train_pool)))]
        picks += [(TEST_UNSEEN if v.speaker in held else TEST_SEEN, i)
                  for i in rng.sample(test_pool, min(test_sentences, len(test_pool)))]
        for subset, i in sorted(picks, key=lambda p: p[1]):
            s = pool[i]
            items.append(Item(f"{v.speaker}_0_{i:06d}_000000", subset, v.speaker, "0", s.original, s.normalized,
                              "synthesis input", "synthetic", voice=v, sentence=i))

    held_real = set(held_out_real)
    by_speaker: dict[str, list[Clip]] = defaultdict(list)
    for clip in real:
        by_speaker[clip.speaker].append(clip)
    missing = sorted(held_real - set(by_speaker))
    if real and missing:
        notes.append(f"held-out real speakers not in the real-speech folder: {', '.join(missing)}")
    for speaker in sorted(by_speaker):
        clips = by_speaker[speaker]
        test_clip = random.Random(f"{seed}:{speaker}").randrange(len(clips)) if len(clips) >= 3 else None
        for j, clip in enumerate(clips):
            subset = TEST_UNSEEN if speaker in held_real else TEST_SEEN if j == test_clip else TRAIN
            items.append(_real_item(clip, subset))

    test_keys = {_key(pool[i].normalized) for i in test_pool}
    for clip in asterisk:
        items.append(_real_item(clip, TEST_SEEN if _key(normalize_text(clip.text)) in test_keys else TRAIN))

    held_voices = sorted(held) + sorted(held_real & set(by_speaker))
    return SplitPlan(items, held_voices, test_pool, notes)


def _real_item(clip: Clip, subset: str) -> Item:
    return Item(f"{clip.speaker}_{clip.chapter}_{clip.key}", subset, clip.speaker, clip.chapter, clip.text,
                normalize_text(clip.text), clip.text_source, clip.source, clip=clip)
