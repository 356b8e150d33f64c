"""`tokenize-corpus`: a speech corpus -> webdataset token shards + manifest.

    tokenize-corpus libritts --codec language-codec                       # built-in sample corpus
    tokenize-corpus libritts --codec language-codec --root /data/LibriTTS --subsets train-clean-100,dev-clean
    torchrun --nproc_per_node 2 -m data_prep.tokenize_corpus librispeech --codec DIR --root /data/LibriSpeech --out tok/

Pipeline: list the corpus (sorted ids) -> drop repeated ids (the first is kept) -> normalise text and
phonemize everything up front (the phoneme vocabulary must be the same for every shard, rank and
resume) -> plan shards (`data_prep.shards`) -> worker processes read and resample the audio of the
unfinished shards while the main process encodes it a few `--batch-seconds` batches at a time (memory
does not grow with `--shard-size`) -> shards written to temporary names and renamed when complete ->
rank 0 writes `phonemes.json`, `manifest.json` and `skipped.jsonl`.

What is refused, skipped or repaired:
- refused up front, one line: impossible flags (`--batch-seconds nan`, `--device cuda` without CUDA,
  `--out` naming a file), an `--language` espeak-ng does not know, phonemes (the default) without
  espeak-ng (pass `--no-phonemes`), a built-in codec name without shipped weights (unless
  `--random-weights`).
- skipped and recorded in `skipped.jsonl` with the reason, the rest processed: unreadable audio, audio
  that is empty or non-finite after resampling, a repeated utterance id (the first in listing order
  is kept), a row whose language espeak-ng does not know or whose text gives no phonemes, a text the
  normaliser cannot read.
- every record field keeps one type across the corpus ("" for a missing text, never null), so
  `datasets.load_dataset("webdataset", ...)` loads the shards.

Resuming: re-running the same command skips finished shards; killing it at any moment loses nothing
(Ctrl-C says "interrupted: re-run the same command to resume"). A finished shard is reused only when
everything that decided its content is the same: the codec's tokens (config hash and weights digest, or
tokens digest: a checkpoint whose decoder alone was retrained resumes), quantizer
count and post-hoc quantization, language, text normaliser version, phoneme vocabulary and each
utterance's text. Anything else is refused with one line naming what differs: re-run with the original
settings or into a fresh `--out` (see `data_prep.shards`, Resuming). Under torchrun or
`accelerate launch` each process takes every N-th shard and rank 0 writes the manifest.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from tokenizer.audio import load_mono
from tokenizer.auto import AutoCodecTokenizer
from tokenizer.cli import run_cli
from tokenizer.errors import AudioError, CodecError

from .corpora import CORPORA, Utterance, get_corpus
from .errors import CorpusError
from .shards import ShardWriter, completed_shards, fingerprint, plan_shards, write_manifest
from .text.normalize import NORMALIZER_VERSION, normalize_text
from .text.phonemize import espeak_available, get_backend, phonemize
from .text.spm import train_sentencepiece
from .text.vocab import PhonemeVocab

logger = logging.getLogger("tokenize-corpus")

# Record fields the pipeline computes; a corpus column of the same name never overrides them.
COMPUTED_FIELDS = ("id", "speaker", "text", "normalized_text", "phonemes", "language", "duration", "num_frames",
                   "num_samples")
WINDOW_BATCHES = 4  # audio held for encoding, in --batch-seconds batches


class _AudioReader(Dataset):
    """Reads, mixes to mono and resamples one utterance in a worker; errors come back as text."""

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


def _batches(order: list[int], lengths: list[int], max_samples: int) -> list[list[int]]:
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


def _distributed():
    """(rank, world_size, barrier) from accelerate's view of torchrun / accelerate launch."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, lambda: None
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    return state.process_index, state.num_processes, state.wait_for_everyone


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tokenize-corpus", description="Turn a speech corpus into codec token shards.")
    p.add_argument("corpus", help=f"one of: {', '.join(CORPORA)}")
    p.add_argument("--codec", default="language-codec", help="codec name, save_pretrained directory or hub id")
    p.add_argument("--random-weights", action="store_true",
                   help="allow a built-in codec name without shipped weights: its untrained preset (testing only)")
    p.add_argument("--root", default=None, help="corpus root (libritts: default is the built-in sample corpus)")
    p.add_argument("--subsets", default=None, help="comma-separated subsets (libritts, librispeech)")
    p.add_argument("--out", default=None, help="output directory (default: tokens/<corpus>-<codec>)")
    p.add_argument("--num-quantizers", type=int, default=None, help="codes per frame (bitrate control)")
    p.add_argument("--quantization", default=None, metavar="K=V[,K=V]",
                   help="post-hoc quantization for codecs that offer it, e.g. levels=5,stages=2 or "
                        "preset=2x15625_700bps (stable-codec); recorded in the manifest")
    p.add_argument("--batch-seconds", type=float, default=120.0, help="padded audio seconds per encoder batch")
    p.add_argument("--num-workers", type=int, default=1, help="audio reading/resampling processes")
    p.add_argument("--shard-size", type=int, default=500, help="utterances per shard")
    p.add_argument("--device", default="cpu")
    p.add_argument("--language", default=None, help="espeak language for phonemes (default: the corpus's)")
    p.add_argument("--no-phonemes", action="store_true", help="skip phonemization")
    p.add_argument("--sentencepiece", type=int, default=None, metavar="VOCAB",
                   help="also train a sentencepiece model of this vocabulary size on the normalised text (spm.model)")
    p.add_argument("--stop-after-shards", type=int, default=None, help=argparse.SUPPRESS)  # test hook: simulated kill
    return p


def _set_quantization(tok, spec: str) -> None:
    """Apply `levels=5,stages=2`-style settings through the tokenizer's `set_quantization`."""
    if not hasattr(tok, "set_quantization"):
        raise CodecError(f"codec {tok.name} has no post-hoc quantization (--quantization {spec})")
    kwargs = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise CodecError(f"--quantization expects key=value pairs, got {part!r}")
        value = value.strip()
        kwargs[key.strip()] = int(value) if value.lstrip("-").isdigit() else value
    try:
        tok.set_quantization(**kwargs)
    except TypeError as exc:
        raise CodecError(f"--quantization {spec}: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    return run_cli("tokenize-corpus", _main, argv)


def _main(argv: list[str] | None) -> int:
    return _run(build_parser().parse_args(argv))


def _check_args(args) -> Path:
    """Refuse impossible flags before anything slow happens; returns the output directory."""
    if args.shard_size < 1:
        raise CorpusError(f"--shard-size must be >= 1, got {args.shard_size}")
    if not (math.isfinite(args.batch_seconds) and args.batch_seconds > 0):
        raise CorpusError(f"--batch-seconds must be a positive number of seconds, got {args.batch_seconds}")
    if args.num_workers < 0:
        raise CorpusError(f"--num-workers must be >= 0, got {args.num_workers}")
    try:
        device = torch.device(args.device)
    except (RuntimeError, TypeError):
        raise CorpusError(f"--device {args.device!r} is not a torch device (cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CorpusError(f"--device {args.device}: CUDA is not available here (use --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise CorpusError(f"--device {args.device}: only {torch.cuda.device_count()} CUDA devices here")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise CorpusError(f"--device {args.device}: MPS is not available here (use --device cpu)")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise CorpusError(f"--device {args.device}: unsupported device type (cpu, cuda, mps)")
    out = Path(args.out or f"tokens/{args.corpus}-{Path(str(args.codec)).name}")
    if out.exists() and not out.is_dir():
        raise CorpusError(f"--out {out} is a file; give a directory (new or from an earlier run to resume)")
    return out


def _check_phonemizer(args) -> None:
    """Phonemes are the default: without espeak-ng, or with an --language it does not know, stop now."""
    if args.no_phonemes:
        return

    if not espeak_available():
        raise CorpusError("phonemes need espeak-ng, which cannot be loaded: install it (apt-get install espeak-ng, "
                          "brew install espeak-ng) or pass --no-phonemes")
    if args.language:
        try:
            get_backend(args.language)
        except CorpusError as exc:
            raise CorpusError(f"--language {args.language!r}: {exc}") from None


def _source(u: Utterance) -> str:
    return u.audio if isinstance(u.audio, str) else f"<bytes of {u.id}>"


def _drop_duplicates(utts: list[Utterance], skipped: list[dict]) -> list[Utterance]:
    """Keep the first utterance of each id (in listing order); record the others as skipped."""
    first: dict[str, Utterance] = {}
    for u in utts:
        if u.id in first:
            skipped.append({"id": u.id, "path": _source(u),
                            "reason": f"duplicate id: {u.id!r} is already used by {_source(first[u.id])}, "
                                      "the first one is kept"})
        else:
            first[u.id] = u
    return list(first.values())


def _normalize(utts: list[Utterance], skipped: list[dict]) -> list[Utterance]:

    kept = []
    for u in utts:
        if u.normalized_text is None:
            try:
                u.normalized_text = normalize_text(u.text or "", u.language)
            except (ArithmeticError, ValueError) as exc:  # num2words on absurd numbers (OverflowError)
                skipped.append({"id": u.id, "path": _source(u), "reason": f"text normalisation failed: {exc!r}"})
                continue
        kept.append(u)
    return kept


def _phonemes(utts: list[Utterance], skipped: list[dict]):
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
            skipped.append({"id": u.id, "path": _source(u), "reason": f"no phonemes: {unsupported[u.language]}"})
        else:
            kept.append(u)
    strings = phonemize([u.normalized_text or "" for u in kept], [u.language for u in kept]) if kept else []
    phon, result = {}, []
    for u, s in zip(kept, strings):
        if s is None and any(c.isalnum() for c in u.normalized_text or ""):
            skipped.append({"id": u.id, "path": _source(u),
                            "reason": f"no phonemes: espeak-ng gave none for {u.normalized_text[:80]!r}"})
            continue
        phon[u.id] = s or ""
        result.append(u)
    return phon, PhonemeVocab.build(phon.values()), result


def _extra_fields(utts: list[Utterance]) -> dict[str, dict]:
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


def _load_codec(args):

    tok = AutoCodecTokenizer.from_pretrained(args.codec, device=args.device, random_weights=args.random_weights)
    if args.random_weights:
        logger.warning("--random-weights: the tokens of an untrained %s codec are noise for any real use", tok.name)
    if args.quantization:
        _set_quantization(tok, args.quantization)
    return tok


def _encode(tok, clips: list[np.ndarray], k: int) -> list[tuple[np.ndarray | None, str | None]]:
    """Codes (K, F) or an error per clip; a clip the tokenizer refuses fails alone, not its batch."""
    try:
        enc = tok(clips, sampling_rate=tok.sampling_rate, num_quantizers=k)
        return [(enc[j].numpy(), None) for j in range(len(clips))]
    except AudioError as exc:
        if len(clips) == 1:
            return [(None, f"cannot encode: {exc}")]
    return [r for clip in clips for r in _encode(tok, [clip], k)]


def _run(args) -> int:
    out = _check_args(args)
    _check_phonemizer(args)
    subsets = args.subsets.split(",") if args.subsets else None
    kwargs = {"language": args.language} if args.language else {}
    corpus = get_corpus(args.corpus, root=args.root, subsets=subsets, **kwargs)
    tok = _load_codec(args)
    k = tok.model.check_num_quantizers(args.num_quantizers)
    rank, world, barrier = _distributed()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise CorpusError(f"--out {out}: cannot create the directory ({exc.strerror}: {exc.filename})") from None
    codec_info = {"name": str(args.codec), **tok.codec_info(k)}

    utts = list(corpus)
    listing_skipped = [{"id": None, "path": item, "reason": why} for item, why in corpus.skipped]
    if not utts:
        raise CorpusError(f"corpus {args.corpus} at {corpus.root} yielded no utterances")
    utts = _normalize(_drop_duplicates(utts, listing_skipped), listing_skipped)
    phon, vocab = {}, None
    if not args.no_phonemes:
        phon, vocab, utts = _phonemes(utts, listing_skipped)
    if not utts:
        raise CorpusError(f"corpus {args.corpus} at {corpus.root}: every utterance was skipped "
                          f"(first reason: {listing_skipped[0]['reason']})")
    extras = _extra_fields(utts)
    by_id = {u.id: u for u in utts}
    texts = {u.id: {"speaker": u.speaker or "", "text": u.text or "", "normalized_text": u.normalized_text or "",
                    "phonemes": phon.get(u.id, ""), "language": u.language or "", **extras[u.id]} for u in utts}
    # Everything that decides a shard's content: the run's settings here, each utterance's text in the plan.
    identity = {**{key: v for key, v in codec_info.items() if key not in ("name", "name_or_path")},
                "language": corpus.language, "normalizer_version": NORMALIZER_VERSION,
                "phoneme_vocab": vocab.digest() if vocab is not None else None}
    plans = plan_shards(list(by_id), args.shard_size, rank, world,
                        fingerprints={i: fingerprint(t) for i, t in texts.items()})
    done = completed_shards(out, plans, identity=identity)
    todo = [p for p in plans if p.name not in done]
    if rank == 0 and args.sentencepiece:

        train_sentencepiece([u.normalized_text for u in utts if u.normalized_text], str(out / "spm"),
                            vocab_size=args.sentencepiece)
    logger.info("%s: %d utterances in %d shards (%d finished before, %d to do on rank %d/%d), codec %s",
                args.corpus, len(utts), plans[0].num_shards if plans else 0, len(done), len(todo), rank, world, tok)

    items = [(i, by_id[i].audio) for p in todo for i in p.ids]
    loader = DataLoader(_AudioReader(items, tok.sampling_rate), batch_size=None, num_workers=args.num_workers,
                        prefetch_factor=4 if args.num_workers else None)
    stats = collections.Counter()
    reasons = collections.Counter()
    t0 = time.perf_counter()
    encode_time = 0.0
    max_samples = int(args.batch_seconds * tok.sampling_rate)
    # Audio is encoded a window at a time, a few batches' worth sorted by length, so memory is bounded by
    # --batch-seconds (and the loader's prefetch), not by --shard-size. Codes do not depend on batching.
    window = WINDOW_BATCHES * max_samples
    bar = tqdm(total=None, unit="h", desc="audio", bar_format="{desc}: {n:.3f} h [{elapsed}, {rate_fmt}] {postfix}",
               disable=None)
    pending: list[dict] = []

    def flush(writer: ShardWriter) -> None:
        nonlocal encode_time
        good = [x for x in pending if x["audio"] is not None]
        lengths = [len(x["audio"]) for x in good]
        order = sorted(range(len(good)), key=lambda i: lengths[i])
        for batch in _batches(order, lengths, max_samples):
            te = time.perf_counter()
            results = _encode(tok, [good[i]["audio"] for i in batch], k)
            encode_time += time.perf_counter() - te
            for i, (codes, error) in zip(batch, results):
                good[i]["codes"], good[i]["error"] = codes, error
        for x in pending:
            if args.stop_after_shards is not None and len(writer.finished) >= args.stop_after_shards:
                raise KeyboardInterrupt  # test hook: behave like a kill between shards
            u = by_id[x["id"]]
            if x.get("codes") is None:
                writer.skip(u.id, _source(u), x["error"])
                reasons[x["error"].split(":")[0]] += 1
                continue
            codes, n = x["codes"], len(x["audio"])
            seconds = n / tok.sampling_rate
            record = {"id": u.id, **texts[u.id], "duration": seconds, "num_frames": int(codes.shape[-1]),
                      "num_samples": n}
            ids = None
            if vocab is not None:
                ids = np.asarray(vocab.encode(phon[u.id]) if phon[u.id] else [], dtype=np.int32)
            writer.write(record, codes, ids)
            stats["utterances"] += 1
            stats["samples"] += n
            stats["tokens"] += codes.size
            bar.update(seconds / 3600)
        pending.clear()
        bar.set_postfix_str(f"{stats['utterances']} utts, shard {len(writer.finished)}/{len(todo)}")

    with ShardWriter(out, todo, tok.codebook_size, identity=identity) as writer:
        pending_samples = 0
        for x in loader:
            pending.append(x)
            pending_samples += 0 if x["audio"] is None else len(x["audio"])
            if pending_samples >= window:
                flush(writer)
                pending_samples = 0
        flush(writer)
    bar.close()
    barrier()
    summary = {"rank": rank, **stats}
    if rank == 0:
        if vocab is not None:  # written with the manifest, which checks that the shards used this vocabulary
            vocab.save(out / "phonemes.json")
        corpus_info = {"name": args.corpus, "root": str(corpus.root), "subsets": subsets,
                       "phoneme_vocab": "phonemes.json" if vocab is not None else None,
                       "sentencepiece": "spm.model" if args.sentencepiece else None}
        manifest = write_manifest(out, codec_info, corpus_info, extra_skipped=listing_skipped, identity=identity)
        summary["manifest"] = manifest["counts"]
    elapsed = time.perf_counter() - t0
    hours = stats["samples"] / tok.sampling_rate / 3600
    print(f"tokenize-corpus: {args.corpus} -> {out}")
    print(f"  this run: {stats['utterances']} utterances, {hours:.3f} h of audio, {stats['tokens']} tokens "
          f"({k} x {tok.codebook_size} codes at {tok.frame_rate:g} Hz, {tok.bitrate_for(k):g} bps)")
    if elapsed > 0 and stats["samples"]:
        print(f"  throughput: {hours * 3600 / elapsed:.1f}x real-time overall, "
              f"{hours * 3600 / max(encode_time, 1e-9):.1f}x in the encoder")
    if len(done):
        print(f"  resumed: {len(done)} shards were already finished")
    if rank == 0:
        c = manifest["counts"]
        print(f"  output: {len(manifest['shards'])} shards, {c['utterances']} utterances, "
              f"{c['seconds'] / 3600:.3f} h, {c['skipped']} skipped (see skipped.jsonl)")
        for reason, n in (reasons + collections.Counter(s["reason"].split(":")[0] for s in listing_skipped)).most_common(5):
            print(f"    skipped {n}: {reason}")
    (out / f"summary-rank{rank}.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
