"""TTS training data from token shards: utterances (phoneme ids, codes, speaker), prompts, token-bounded
batches and a held-out validation split. Shared by every TTS model of the toolkit.

    corpus = TTSCorpus.load(["tokens/libritts-lc"], valid_utterances=8)
    batches = TokenBatches(corpus.train, max_tokens=6000, seed=0, prompt="prefix", max_prompt_frames=150)
    batch = batches.batch(step)            # a TTSBatch, the same for a given (seed, step) on every run

Shard format: `data_prep.shards` (manifest + webdataset tars, phoneme ids per utterance). Every `--data`
directory must have phoneme ids (else one line naming the directory), the same codec identity (model type,
config hash, weights digest, codebook count and size) and the same phoneme vocabulary (`phonemes.json`).
The codebook count K and size come from the manifest, so any codec's tokens load.

Utterances are read once into memory (codes as int32: a 555 h corpus of 8 x 75 Hz codes is ~4.8 GB).

Prompts (what the model conditions on besides the text) are built per batch item:
- `prefix`: the first n frames of the utterance itself, n uniform in [F/4, min(F/2, max_prompt_frames)]
  (lifeiteng/vall-e's recommended prefix_mode 1); the phonemes cover the whole utterance.
- `other`: another utterance of the same speaker no longer than `max_prompt_frames`, its phonemes put
  before the target's with a word boundary between (VALL-E's cross-sentence inference setting). A speaker
  without such an utterance falls back to `prefix`.
The target is what follows the prompt. Random choices are drawn from (seed, epoch, batch index), so a
batch depends only on the seed and the step: a resumed run sees the batches an uninterrupted one sees.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import torch

from data_prep.dataset import TokenShardDataset
from data_prep.errors import CorpusError
from data_prep.text.vocab import FILE_NAME as VOCAB_FILE
from data_prep.text.vocab import PhonemeVocab
from tokenizer.identity import REQUIRED_KEYS, check_same_tokens

from .errors import TTSError

logger = logging.getLogger(__name__)

PROMPT_MODES = ("prefix", "other")


# ----------------------------------------------------------------------------------------- reading
def _fields(sample: dict) -> tuple[str, torch.Tensor, torch.Tensor | None, dict]:
    """(id, codes (K, F), phoneme ids (P,) or None, record) of one `TokenShardDataset` sample.

    The only place that knows the reader's key names: adapt here when `data_prep.dataset` renames them.
    """
    return sample["id"], sample["codes"], sample["phoneme_ids"], sample["record"]


def _read_samples(shard_dir: Path) -> Iterator[dict]:
    """Every sample of every shard of `shard_dir`, on every process.

    `TokenShardDataset.__iter__` gives each distributed rank only its own shards; a TTS trainer needs all
    utterances everywhere (prompts of the same speaker, one global batch order), hence `all_samples()`.
    """
    yield from TokenShardDataset(shard_dir).all_samples()


@dataclass
class Utterance:
    """One utterance: `codes` IntTensor (K, F) codec frames, `phonemes` IntTensor (P,) vocabulary ids."""

    id: str
    speaker: str
    codes: torch.Tensor
    phonemes: torch.Tensor
    text: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.codes.shape[-1])

    @property
    def num_tokens(self) -> int:
        return int(self.codes.shape[-1]) + int(self.phonemes.shape[-1])


def check_codec_identity(a: dict, b: dict, where_a: str, where_b: str) -> None:
    """TTSError naming the field where two codec records tell their tokens apart (`tokenizer.identity`: a
    codec whose decoder was retrained on frozen tokens matches), then K and codebook size; a record without
    its identity is refused: the identity cannot be established."""
    check_same_tokens(a, b, where_a, where_b, error=TTSError, fields=("num_quantizers", "codebook_size"))


@dataclass
class TTSCorpus:
    """Utterances of one or more shard directories, split into train and validation."""

    codec: dict
    vocab: PhonemeVocab
    train: list[Utterance]
    valid: list[Utterance]
    dirs: list[str] = field(default_factory=list)
    language: str = "en-us"

    @property
    def num_quantizers(self) -> int:
        return int(self.codec["num_quantizers"])

    @property
    def codebook_size(self) -> int:
        return int(self.codec["codebook_size"])

    @property
    def frame_rate(self) -> float:
        return float(self.codec["frame_rate"])

    @classmethod
    def load(cls, dirs: Sequence[str | os.PathLike], valid_utterances: int = 4,
             valid_speakers: Sequence[str] = (), max_frames: int | None = None) -> "TTSCorpus":
        """Read every utterance of `dirs`. Validation: all utterances of `valid_speakers` plus
        `valid_utterances` others chosen by a hash of their id (stable across runs and corpus growth).
        Utterances longer than `max_frames`, with fewer than 2 frames or without phonemes are left out."""
        if not dirs:
            raise TTSError("no --data directory given")
        codec, vocab, where0, language = None, None, None, "en-us"
        utts: list[Utterance] = []
        where: dict[str, str] = {}  # utterance id -> its folder
        dropped = 0
        for d in dirs:
            d = Path(d)
            try:
                manifest = TokenShardDataset(d).manifest
            except CorpusError as exc:
                raise TTSError(str(exc)) from None
            if not manifest.get("has_phonemes"):
                if (manifest.get("counts") or {}).get("utterances", 1) == 0:
                    raise TTSError(f"{d} holds no utterances (its manifest lists 0): nothing to train on")
                raise TTSError(f"{d} has no phoneme ids: re-run tokenize-corpus without --no-phonemes "
                               "(with espeak-ng installed)")
            try:
                dir_vocab = PhonemeVocab.load(d / VOCAB_FILE)
            except CorpusError as exc:
                raise TTSError(str(exc)) from None
            if codec is None:
                codec, vocab, where0 = dict(manifest["codec"]), dir_vocab, str(d)
            else:
                check_codec_identity(codec, manifest["codec"], where0, str(d))
                if dir_vocab.tokens != vocab.tokens:
                    raise TTSError(f"phoneme vocabularies differ: {where0}/{VOCAB_FILE} and {d}/{VOCAB_FILE}; "
                                   "tokenize the corpora together or with the same phonemes.json")
            for sample in _read_samples(d):
                utt_id, codes, phonemes, record = _fields(sample)
                if phonemes is None or phonemes.numel() == 0 or codes.shape[-1] < 2 or (
                        max_frames is not None and codes.shape[-1] > max_frames):
                    dropped += 1
                    continue
                if utt_id in where:  # the same utterance twice would be trained on twice, silently
                    raise TTSError(f"utterance {utt_id!r} is in {where[utt_id]} and in {d}: the same utterance "
                                   "twice (one corpus given twice, or tokenized twice); give each corpus once")
                where[utt_id] = str(d)
                language = record.get("language") or language
                utts.append(Utterance(utt_id, str(record.get("speaker")), codes.to(torch.int32),
                                      phonemes.to(torch.int32), record.get("normalized_text") or ""))
        if dropped:
            logger.info("left out %d utterances (no phonemes, < 2 frames or > max_frames)", dropped)
        for key in (*REQUIRED_KEYS, "num_quantizers", "codebook_size", "frame_rate"):
            if codec.get(key) is None:
                raise TTSError(f"{where0}/manifest.json records no codec {key}")
        utts.sort(key=lambda u: u.id)
        held = {str(s) for s in valid_speakers}  # records store speakers as strings (LibriTTS ids are numbers)
        unknown = sorted(held - {u.speaker for u in utts})
        if unknown:
            speakers = sorted({u.speaker for u in utts})
            raise TTSError(f"data.valid_speakers: {', '.join(unknown)} not in the corpus (its speakers: "
                           f"{', '.join(speakers[:20])}{' ...' if len(speakers) > 20 else ''})")
        valid = [u for u in utts if u.speaker in held]
        rest = [u for u in utts if u.speaker not in held]
        by_hash = sorted(rest, key=lambda u: hashlib.sha256(u.id.encode()).hexdigest())
        chosen = {u.id for u in by_hash[: max(0, min(valid_utterances, len(rest) - 1))]}
        valid += [u for u in rest if u.id in chosen]
        train = [u for u in rest if u.id not in chosen]
        if not train:
            raise TTSError(f"no training utterances left in {', '.join(map(str, dirs))}")
        return cls(codec=codec, vocab=vocab, train=train, valid=valid, dirs=[str(d) for d in dirs],
                   language=_espeak_language(language))


def _espeak_language(language: str) -> str:
    return "en-us" if language in ("en", "en_us", "en-US") else language


# ----------------------------------------------------------------------------------------- batches
@dataclass
class TTSBatch:
    """A padded batch of B items. Shapes: `phonemes` (B, P) ids padded with 0, `phoneme_lengths` (B,);
    `prompt` (B, K, Fp) codes, `prompt_lengths` (B,) frames (0: no prompt); `codes` (B, K, F) target
    codes, `code_lengths` (B,) frames. The phonemes cover the prompt's words and then the target's."""

    phonemes: torch.Tensor
    phoneme_lengths: torch.Tensor
    prompt: torch.Tensor
    prompt_lengths: torch.Tensor
    codes: torch.Tensor
    code_lengths: torch.Tensor
    ids: list[str]

    def to(self, device) -> "TTSBatch":
        return TTSBatch(*(t.to(device) if isinstance(t, torch.Tensor) else t for t in
                          (self.phonemes, self.phoneme_lengths, self.prompt, self.prompt_lengths, self.codes,
                           self.code_lengths)), ids=self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_tokens(self) -> int:
        return int(self.phoneme_lengths.sum() + self.prompt_lengths.sum() + self.code_lengths.sum())


def pad(tensors: Sequence[torch.Tensor], value: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad (..., L_i) tensors on the last axis -> (B, ..., L_max) int64 and lengths (B,)."""
    lengths = torch.tensor([t.shape[-1] for t in tensors], dtype=torch.long)
    shape = tensors[0].shape[:-1]
    out = torch.full((len(tensors), *shape, max(int(lengths.max()), 1)), value, dtype=torch.long)
    for i, t in enumerate(tensors):
        out[i, ..., : t.shape[-1]] = t
    return out, lengths


def collate(items: Sequence[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]]) -> TTSBatch:
    """(id, phonemes (P,), prompt (K, Fp), target (K, F)) items -> TTSBatch."""
    phonemes, p_len = pad([x[1] for x in items])
    prompt, fp_len = pad([x[2] for x in items])
    codes, f_len = pad([x[3] for x in items])
    return TTSBatch(phonemes, p_len, prompt, fp_len, codes, f_len, [x[0] for x in items])


def split_prefix(utt: Utterance, rng: random.Random, max_prompt_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(prompt (K, n), target (K, F - n)) with n uniform in [F/4, min(F/2, max_prompt_frames)], n >= 1."""
    frames = utt.num_frames
    lo = max(1, frames // 4)
    hi = max(lo, min(frames // 2, max_prompt_frames))
    n = rng.randint(lo, hi)
    return utt.codes[:, :n], utt.codes[:, n:]


class TokenBatches:
    """Token-bounded batches of `utts`, a pure function of (seed, step) for exact resume.

    Epoch e: the utterances shuffled by (seed, e), sorted by length inside windows of `sort_window`, cut
    into batches whose padded size B x max(tokens) stays within `max_tokens`, batches shuffled. Step s
    takes the batch that follows step s - 1 across epochs; with `world_size` > 1 each rank takes every
    `world_size`-th batch (epochs are cut to a multiple of `world_size` so every rank has as many).
    """

    def __init__(self, utts: list[Utterance], max_tokens: int, seed: int = 0, prompt: str = "prefix",
                 max_prompt_frames: int = 150, sort_window: int = 1000, rank: int = 0, world_size: int = 1,
                 word_boundary_id: int = 4):
        if prompt not in PROMPT_MODES:
            raise TTSError(f"data.prompt={prompt!r} not one of {', '.join(PROMPT_MODES)}")
        self.prompt, self.max_prompt_frames, self.seed = prompt, max(1, max_prompt_frames), seed
        self.rank, self.world_size, self.sort_window, self.boundary = rank, world_size, sort_window, word_boundary_id
        reserve = self.max_prompt_frames * 3 // 2 if prompt == "other" else 0  # prompt frames + its phonemes
        self.cost = [u.num_tokens + reserve for u in utts]
        keep = [i for i, c in enumerate(self.cost) if c <= max_tokens]
        if len(keep) < len(utts):
            logger.warning("%d utterances need more than data.max_tokens=%d tokens and are left out",
                           len(utts) - len(keep), max_tokens)
        if not keep:
            raise TTSError(f"data.max_tokens={max_tokens} is smaller than every utterance "
                           f"(shortest needs {min(self.cost)} tokens)")
        self.utts, self.cost = [utts[i] for i in keep], [self.cost[i] for i in keep]
        self.max_tokens = max_tokens
        self.by_speaker: dict[str, list[int]] = {}
        for i, u in enumerate(self.utts):
            if u.num_frames <= self.max_prompt_frames:
                self.by_speaker.setdefault(u.speaker, []).append(i)
        self._cache: dict[int, list[list[int]]] = {}
        self._counts: list[int] = []

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """Index lists of the batches of `epoch` (all ranks), cut to a multiple of world_size. Only the last
        two epochs' lists are kept (a long run has thousands of epochs); the per-epoch counts are kept."""
        if epoch in self._cache:
            return self._cache[epoch]
        rng = random.Random(f"{self.seed}:epoch:{epoch}")
        order = list(range(len(self.utts)))
        rng.shuffle(order)
        batches: list[list[int]] = []
        for w in range(0, len(order), self.sort_window):
            window = sorted(order[w : w + self.sort_window], key=lambda i: self.cost[i])
            current, longest = [], 0
            for i in window:
                if current and (len(current) + 1) * max(longest, self.cost[i]) > self.max_tokens:
                    batches.append(current)
                    current, longest = [], 0
                current.append(i)
                longest = max(longest, self.cost[i])
            if current:
                batches.append(current)
        rng.shuffle(batches)
        usable = len(batches) - len(batches) % self.world_size
        if usable == 0:
            raise TTSError(f"{len(batches)} batches per epoch cannot be shared by {self.world_size} processes")
        self._cache = {e: b for e, b in self._cache.items() if e == epoch - 1}
        self._cache[epoch] = batches[:usable]
        return self._cache[epoch]

    def _per_rank(self, epoch: int) -> int:
        while len(self._counts) <= epoch:
            self._counts.append(len(self.epoch_batches(len(self._counts))) // self.world_size)
        return self._counts[epoch]

    def locate(self, step: int) -> tuple[int, int]:
        """(epoch, index of this rank's batch in the epoch's list) of optimizer step `step` (0-based)."""
        epoch = 0
        while step >= self._per_rank(epoch):
            step -= self._per_rank(epoch)
            epoch += 1
        return epoch, step * self.world_size + self.rank

    def batch(self, step: int) -> TTSBatch:
        epoch, index = self.locate(step)
        rng = random.Random(f"{self.seed}:prompt:{epoch}:{index}")
        return collate([self.item(i, rng) for i in self.epoch_batches(epoch)[index]])

    def item(self, i: int, rng: random.Random) -> tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(id, phonemes, prompt codes, target codes) of utterance i with a prompt drawn from `rng`."""
        utt = self.utts[i]
        if self.prompt == "other":
            others = [j for j in self.by_speaker.get(utt.speaker, []) if j != i]
            if others:
                other = self.utts[rng.choice(others)]
                phonemes = torch.cat([other.phonemes, torch.tensor([self.boundary], dtype=torch.int32),
                                      utt.phonemes])
                return utt.id, phonemes, other.codes, utt.codes
        prompt, target = split_prefix(utt, rng, self.max_prompt_frames)
        return utt.id, utt.phonemes, prompt, target

    def __iter__(self) -> Iterator[TTSBatch]:
        step = 0
        while True:
            yield self.batch(step)
            step += 1


def fixed_batches(utts: list[Utterance], max_tokens: int, max_prompt_frames: int, seed: int = 0) -> list[TTSBatch]:
    """Validation batches: every utterance once, prefix prompts drawn from (seed, id), sorted by length."""
    items = []
    for u in sorted(utts, key=lambda u: u.num_tokens):
        prompt, target = split_prefix(u, random.Random(f"{seed}:valid:{u.id}"), max_prompt_frames)
        items.append((u.id, u.phonemes, prompt, target))
    batches, current, longest = [], [], 0
    for item, u in zip(items, sorted(utts, key=lambda u: u.num_tokens)):
        if current and (len(current) + 1) * max(longest, u.num_tokens) > max_tokens:
            batches.append(collate(current))
            current, longest = [], 0
        current.append(item)
        longest = max(longest, u.num_tokens)
    if current:
        batches.append(collate(current))
    return batches
