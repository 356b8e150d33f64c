"""Tokenizing a corpus as a library: `tokenize_corpus(corpus, tokenizer, out_dir, ...) -> TokenizeResult`.

    from data_prep.corpora import get_corpus
    from data_prep.pipeline import tokenize_corpus
    from tokenizer import AutoCodecTokenizer

    result = tokenize_corpus(get_corpus("libritts"), AutoCodecTokenizer.from_pretrained("language-codec"),
                             "tokens/libritts-lc", num_quantizers=4)
    result.manifest["counts"]            # {'utterances': 20, 'seconds': ..., 'skipped': 0, ...}

The `tokenize-corpus` CLI (`data_prep/tokenize_corpus.py`) is a thin layer over this function: it checks the
flags, builds the corpus and the tokenizer, and prints the summary. The steps, each usable alone:

1. `prepare_texts(utterances)`: drop repeated ids (the first is kept), normalise every text, phonemize
   everything up front (the phoneme vocabulary must be the same for every shard, rank and resume) and give
   every extra record field one type across the corpus -> `PreparedCorpus` (what was dropped and why in
   `.skipped`).
2. `shard_identity(...)` and `data_prep.shards.plan_shards` / `completed_shards`: what decides a shard's
   content, and which shards an earlier run already finished with the same settings.
3. `read_audio(items, sampling_rate, num_workers)`: worker processes read, mix to mono and resample; errors
   come back as text, never as exceptions.
4. `encode_in_batches(tokenizer, clips, k, max_samples)`: length-sorted batches of at most `max_samples`
   padded samples; a clip the tokenizer refuses fails alone, not its batch. Codes do not depend on batching.
5. `data_prep.shards.ShardWriter` / `write_manifest`: shards written to temporary names and renamed when
   complete, then the manifest.

Distributed runs (torchrun, `accelerate launch`) pass `rank`, `world_size` and `barrier`: each process takes
every N-th shard and rank 0 writes `phonemes.json`, `manifest.json` and `skipped.jsonl`.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from tokenizer.audio import load_mono
from tokenizer.utils.errors import AudioError, CodecError

from .corpora import Utterance
from .errors import CorpusError
from .shards import ShardWriter, completed_shards, fingerprint, plan_shards, write_manifest
from .text.normalize import NORMALIZER_VERSION, normalize_text
from .text.phonemize import get_backend, phonemize
from .text.spm import train_sentencepiece
from .text.vocab import PhonemeVocab

logger = logging.getLogger("tokenize-corpus")

# Record fields the pipeline computes; a corpus column of the same name never overrides them.
COMPUTED_FIELDS = ("id", "speaker", "text", "normalized_text", "phonemes", "language", "duration", "num_frames",
                   "num_samples")
WINDOW_BATCHES = 4  # audio held for encoding, in max_samples batches


# ------------------------------------------------------------------------------------------------ texts
@dataclass
class PreparedCorpus:
    """The utterances kept (listing order), their record text fields (speaker, text, normalized_text,
    phonemes, language and the corpus's extra fields, each of one type across the corpus), the phoneme
    vocabulary (None without phonemes) and what was dropped: `{"id", "path", "reason"}` rows."""

    utterances: list[Utterance]
    records: dict[str, dict]
    phonemes: dict[str, str]
    vocab: PhonemeVocab | None
    skipped: list[dict] = field(default_factory=list)


def source_of(u: Utterance) -> str:
    """The file an utterance comes from, for messages and `skipped.jsonl`."""
    return u.audio if isinstance(u.audio, str) else f"<bytes of {u.id}>"


def drop_duplicates(utts: list[Utterance], skipped: list[dict]) -> list[Utterance]:
    """Keep the first utterance of each id (in listing order); record the others as skipped."""
    first: dict[str, Utterance] = {}
    for u in utts:
        if u.id in first:
            skipped.append({"id": u.id, "path": source_of(u),
                            "reason": f"duplicate id: {u.id!r} is already used by {source_of(first[u.id])}, "
                                      "the first one is kept"})
        else:
            first[u.id] = u
    return list(first.values())


def normalize_texts(utts: list[Utterance], skipped: list[dict]) -> list[Utterance]:
    """Fill `normalized_text` where the corpus gives none; a text the normaliser cannot read is skipped."""
    kept = []
    for u in utts:
        if u.normalized_text is None:
            try:
                u.normalized_text = normalize_text(u.text or "", u.language)
            except (ArithmeticError, ValueError) as exc:  # num2words on absurd numbers (OverflowError)
                skipped.append({"id": u.id, "path": source_of(u), "reason": f"text normalisation failed: {exc!r}"})
                continue
        kept.append(u)
    return kept


def phonemize_texts(utts: list[Utterance], skipped: list[dict]) -> tuple[dict[str, str], PhonemeVocab,
                                                                           list[Utterance]]:
    """Phoneme strings of the kept utterances ("" for an empty text), the vocabulary and the kept ones.

    An utterance whose language espeak-ng does not know, or whose non-empty text does not phonemize,
    is skipped with the reason: one bad row costs that row, not the corpus's phonemes.
    """
    unsupported = {}
    for language in sorted({u.language for u in utts}):
        try:
            get_backend(language)
        except CorpusError as exc:
            unsupported[language] = str(exc)
    kept = []
    for u in utts:
        if u.language in unsupported:
            skipped.append({"id": u.id, "path": source_of(u), "reason": f"no phonemes: {unsupported[u.language]}"})
        else:
            kept.append(u)
    strings = phonemize([u.normalized_text or "" for u in kept], [u.language for u in kept]) if kept else []
    phon, result = {}, []
    for u, s in zip(kept, strings):
        if s is None and any(c.isalnum() for c in u.normalized_text or ""):
            skipped.append({"id": u.id, "path": source_of(u),
                            "reason": f"no phonemes: espeak-ng gave none for {u.normalized_text[:80]!r}"})
            continue
        phon[u.id] = s or ""
        result.append(u)
    return phon, PhonemeVocab.build(phon.values()), result


def extra_fields(utts: list[Utterance]) -> dict[str, dict]:
    """Extra record fields of every utterance, each field of one type across the corpus.

    A field with one scalar type everywhere keeps it (ints mixed with floats become floats); a field
    missing, null or of mixed types somewhere is stored as text ("" where missing), because ``datasets``
    infers one type per column. Fields named like a computed record field are dropped (the computed
    value is the truth: a manifest's "duration" column does not override the audio's).
    """
    kinds: dict[str, set] = collections.defaultdict(set)
    present: collections.Counter = collections.Counter()
    for u in utts:
        for key, value in u.extra.items():
            if isinstance(value, (str, int, float, bool)):
                kinds[key].add(type(value))
                present[key] += 1
    clash = sorted(set(kinds) & set(COMPUTED_FIELDS))
    if clash:
        logger.warning("corpus fields %s are computed from the audio and text; the corpus's values are ignored", clash)
    cast = {}
    for key, types in kinds.items():
        if key in COMPUTED_FIELDS:
            continue
        if present[key] == len(utts) and len(types) == 1:
            cast[key] = types.pop()
        elif present[key] == len(utts) and types == {int, float}:
            cast[key] = float
        else:
            cast[key] = str
    out = {}
    for u in utts:
        fields = {}
        for key, kind in sorted(cast.items()):
            value = u.extra.get(key)
            if not isinstance(value, (str, int, float, bool)):
                value = ""
            fields[key] = kind(value) if kind is not str or not isinstance(value, str) else value
        out[u.id] = fields
    return out


def prepare_texts(utterances: Iterable[Utterance], phonemes: bool = True,
                  skipped: list[dict] | None = None) -> PreparedCorpus:
    """Steps before any audio is read: duplicates, normalisation, phonemes, record fields (see the module
    docstring). `skipped`: rows dropped earlier (the corpus listing's), kept first in `.skipped`."""
    skipped = list(skipped or [])
    utts = normalize_texts(drop_duplicates(list(utterances), skipped), skipped)
    phon, vocab = {}, None
    if phonemes:
        phon, vocab, utts = phonemize_texts(utts, skipped)
    extras = extra_fields(utts)
    records = {u.id: {"speaker": u.speaker or "", "text": u.text or "", "normalized_text": u.normalized_text or "",
                      "phonemes": phon.get(u.id, ""), "language": u.language or "", **extras[u.id]} for u in utts}
    return PreparedCorpus(utts, records, phon, vocab, skipped)


def shard_identity(codec_info: dict, language: str | None, vocab: PhonemeVocab | None) -> dict:
    """Everything of the run's settings that decides a shard's content (each utterance's text is in the
    plan): the codec's tokens, quantizer count and post-hoc settings, language, normaliser version and
    phoneme vocabulary. A finished shard is reused on resume only when this is the same."""
    return {**{key: v for key, v in codec_info.items() if key not in ("name", "name_or_path")},
            "language": language, "normalizer_version": NORMALIZER_VERSION,
            "phoneme_vocab": vocab.digest() if vocab is not None else None}


# ------------------------------------------------------------------------------------------------ audio
class AudioReader(Dataset):
    """Reads, mixes to mono and resamples one utterance in a worker; errors come back as text:
    item i -> {"id", "audio": float32 (T,) or None, "error": None or the reason}."""

    def __init__(self, items: list[tuple[str, object]], sampling_rate: int):
        self.items, self.sampling_rate = items, sampling_rate

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        utt_id, source = self.items[i]
        try:
            audio, _ = load_mono(source, self.sampling_rate, name=utt_id)
        except CodecError as exc:
            return {"id": utt_id, "audio": None, "error": str(exc)}
        # Checked after resampling too: a 1-sample 48 kHz file resamples to nothing, a float file near
        # the float32 limit to inf; either would fail the whole encoder batch.
        if audio.size == 0:
            return {"id": utt_id, "audio": None, "error": f"audio empty after resampling to {self.sampling_rate} Hz: "
                                                          f"{utt_id}"}
        if not np.isfinite(audio).all():
            return {"id": utt_id, "audio": None, "error": f"audio not finite after resampling to "
                                                          f"{self.sampling_rate} Hz: {utt_id}"}
        return {"id": utt_id, "audio": audio, "error": None}


def read_audio(items: list[tuple[str, object]], sampling_rate: int, num_workers: int = 1) -> Iterator[dict]:
    """`AudioReader`'s items in order, read by `num_workers` processes (0: in this process)."""
    return iter(DataLoader(AudioReader(items, sampling_rate), batch_size=None, num_workers=num_workers,
                           prefetch_factor=4 if num_workers else None))


def length_batches(order: list[int], lengths: list[int], max_samples: int) -> list[list[int]]:
    """Group indices (sorted by length) so that padded size (longest x count) stays under max_samples."""
    batches, current, longest = [], [], 0
    for i in order:
        new_longest = max(longest, lengths[i])
        if current and new_longest * (len(current) + 1) > max_samples:
            batches.append(current)
            current, new_longest = [], lengths[i]
        current.append(i)
        longest = new_longest
    if current:
        batches.append(current)
    return batches


def encode_clips(tok, clips: list[np.ndarray], k: int) -> list[tuple[np.ndarray | None, str | None]]:
    """Codes (K, F) or an error per clip; a clip the tokenizer refuses fails alone, not its batch."""
    try:
        enc = tok(clips, sampling_rate=tok.sampling_rate, num_quantizers=k)
        return [(enc[j].numpy(), None) for j in range(len(clips))]
    except AudioError as exc:
        if len(clips) == 1:
            return [(None, f"cannot encode: {exc}")]
    return [r for clip in clips for r in encode_clips(tok, [clip], k)]


def encode_in_batches(tok, clips: list[np.ndarray], k: int,
                      max_samples: int) -> list[tuple[np.ndarray | None, str | None]]:
    """`encode_clips` over length-sorted batches of at most `max_samples` padded samples, in input order."""
    lengths = [len(c) for c in clips]
    results: list = [None] * len(clips)
    for batch in length_batches(sorted(range(len(clips)), key=lambda i: lengths[i]), lengths, max_samples):
        for i, r in zip(batch, encode_clips(tok, [clips[i] for i in batch], k)):
            results[i] = r
    return results


# ------------------------------------------------------------------------------------------------ the run
@dataclass
class TokenizeResult:
    """out_dir; manifest: the written manifest (rank 0; None on other ranks); stats: this run's
    `utterances`, `samples` and `tokens`; skip_reasons: this run's skipped audio by reason (the listing's
    are in the manifest's skipped.jsonl); finished_before: shards an earlier run had finished;
    shards_done: shards this run wrote; seconds / encode_seconds: wall time overall and in the encoder."""

    out_dir: Path
    manifest: dict | None
    stats: collections.Counter
    skip_reasons: collections.Counter
    finished_before: int
    shards_done: int
    seconds: float
    encode_seconds: float
    listing_skipped: list[dict]


def tokenize_corpus(corpus: Iterable[Utterance], tokenizer, out_dir: str | Path, *, num_quantizers: int | None = None,
                    shard_size: int = 500, phonemes: bool = True, batch_seconds: float = 120.0,
                    num_workers: int = 1, sentencepiece: int | None = None, codec_name: str | None = None,
                    corpus_name: str | None = None, subsets: list[str] | None = None, rank: int = 0,
                    world_size: int = 1, barrier: Callable[[], None] = lambda: None,
                    show_progress: bool | None = None, stop_after_shards: int | None = None) -> TokenizeResult:
    """Tokenize `corpus` into webdataset shards + manifest under `out_dir`, resuming finished shards.

    corpus: a `data_prep.corpora.Corpus` (or any iterable of `Utterance`; its `skipped`, `root`, `language`
    and `name` are read when present). tokenizer: a `CodecTokenizer` (its post-hoc quantization already
    set). num_quantizers: codes per frame (None: the codec's default). codec_name: how the manifest names the
    codec (default: the tokenizer's `name_or_path` or `name`). stop_after_shards: a test hook that behaves like
    a kill after that many shards. Raises `CorpusError` when nothing is left to tokenize, and refuses (through
    `completed_shards`) a resume whose settings differ, naming what differs.
    """
    tok = tokenizer
    out = Path(out_dir)
    k = tok.model.check_num_quantizers(num_quantizers)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise CorpusError(f"--out {out}: cannot create the directory ({exc.strerror}: {exc.filename})") from None
    info = tok.codec_info(k)
    codec_info = {"name": codec_name or info.get("name_or_path") or tok.name, **info}
    name = corpus_name or getattr(corpus, "name", "") or "corpus"
    root = getattr(corpus, "root", None)

    utts = list(corpus)
    listing_skipped = [{"id": None, "path": item, "reason": why} for item, why in getattr(corpus, "skipped", [])]
    if not utts:
        raise CorpusError(f"corpus {name} at {root} yielded no utterances")
    prepared = prepare_texts(utts, phonemes=phonemes, skipped=listing_skipped)
    listing_skipped, vocab = prepared.skipped, prepared.vocab
    if not prepared.utterances:
        raise CorpusError(f"corpus {name} at {root}: every utterance was skipped "
                          f"(first reason: {listing_skipped[0]['reason']})")
    by_id = {u.id: u for u in prepared.utterances}
    language = getattr(corpus, "language", None)
    if language is None:
        language = ",".join(sorted({u.language for u in prepared.utterances}))
    identity = shard_identity(codec_info, language, vocab)
    plans = plan_shards(list(by_id), shard_size, rank, world_size,
                        fingerprints={i: fingerprint(t) for i, t in prepared.records.items()})
    done = completed_shards(out, plans, identity=identity)
    todo = [p for p in plans if p.name not in done]
    if rank == 0 and sentencepiece:
        train_sentencepiece([u.normalized_text for u in prepared.utterances if u.normalized_text], str(out / "spm"),
                            vocab_size=sentencepiece)
    logger.info("%s: %d utterances in %d shards (%d finished before, %d to do on rank %d/%d), codec %s",
                name, len(by_id), plans[0].num_shards if plans else 0, len(done), len(todo), rank, world_size, tok)

    stats, reasons = collections.Counter(), collections.Counter()
    t0 = time.perf_counter()
    encode_seconds = 0.0
    max_samples = int(batch_seconds * tok.sampling_rate)
    # Audio is encoded a window at a time, a few batches' worth sorted by length, so memory is bounded by
    # batch_seconds (and the loader's prefetch), not by shard_size.
    window = WINDOW_BATCHES * max_samples
    bar = tqdm(total=None, unit="h", desc="audio", bar_format="{desc}: {n:.3f} h [{elapsed}, {rate_fmt}] {postfix}",
               disable=None if show_progress is None else not show_progress)
    pending: list[dict] = []

    def flush(writer: ShardWriter) -> None:
        nonlocal encode_seconds
        good = [x for x in pending if x["audio"] is not None]
        te = time.perf_counter()
        for x, (codes, error) in zip(good, encode_in_batches(tok, [x["audio"] for x in good], k, max_samples)):
            x["codes"], x["error"] = codes, error
        encode_seconds += time.perf_counter() - te
        for x in pending:
            if stop_after_shards is not None and len(writer.finished) >= stop_after_shards:
                raise KeyboardInterrupt  # test hook: behave like a kill between shards
            u = by_id[x["id"]]
            if x.get("codes") is None:
                writer.skip(u.id, source_of(u), x["error"])
                reasons[x["error"].split(":")[0]] += 1
                continue
            codes, n = x["codes"], len(x["audio"])
            seconds = n / tok.sampling_rate
            record = {"id": u.id, **prepared.records[u.id], "duration": seconds, "num_frames": int(codes.shape[-1]),
                      "num_samples": n}
            ids = None
            if vocab is not None:
                phon = prepared.phonemes[u.id]
                ids = np.asarray(vocab.encode(phon) if phon else [], dtype=np.int32)
            writer.write(record, codes, ids)
            stats["utterances"] += 1
            stats["samples"] += n
            stats["tokens"] += codes.size
            bar.update(seconds / 3600)
        pending.clear()
        bar.set_postfix_str(f"{stats['utterances']} utts, shard {len(writer.finished)}/{len(todo)}")

    items = [(i, by_id[i].audio) for p in todo for i in p.ids]
    with ShardWriter(out, todo, tok.codebook_size, identity=identity) as writer:
        pending_samples = 0
        for x in read_audio(items, tok.sampling_rate, num_workers):
            pending.append(x)
            pending_samples += 0 if x["audio"] is None else len(x["audio"])
            if pending_samples >= window:
                flush(writer)
                pending_samples = 0
        flush(writer)
        shards_done = len(writer.finished)
    bar.close()
    barrier()
    manifest = None
    if rank == 0:
        if vocab is not None:  # written with the manifest, which checks that the shards used this vocabulary
            vocab.save(out / "phonemes.json")
        corpus_info = {"name": name, "root": str(root), "subsets": subsets,
                       "phoneme_vocab": "phonemes.json" if vocab is not None else None,
                       "sentencepiece": "spm.model" if sentencepiece else None}
        manifest = write_manifest(out, codec_info, corpus_info, extra_skipped=listing_skipped, identity=identity)
    return TokenizeResult(out, manifest, stats, reasons, len(done), shards_done, time.perf_counter() - t0,
                          encode_seconds, listing_skipped)
