"""`tokenize-corpus`: a speech corpus -> webdataset token shards + manifest.

    tokenize-corpus libritts --codec language-codec                       # built-in sample corpus
    tokenize-corpus libritts --codec language-codec --root /data/LibriTTS --subsets train-clean-100,dev-clean
    torchrun --nproc_per_node 2 -m data_prep.cli librispeech --codec DIR --root /data/LibriSpeech --out tok/

Pipeline: list the corpus (sorted ids) -> normalise text and phonemize everything up front (the phoneme
vocabulary must be the same for every shard, rank and resume) -> plan shards (`data_prep.shards`) ->
for each unfinished shard, worker processes read and resample the audio while the main process encodes
batches bounded by `--batch-seconds` of padded audio -> shards written to temporary names and renamed
when complete -> rank 0 writes `manifest.json`, `skipped.jsonl` and `phonemes.json`.

Re-running the same command skips finished shards; killing it at any moment loses nothing. Under
torchrun or `accelerate launch` each process takes every N-th shard and rank 0 writes the manifest.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from tokenizer.audio import load_mono
from tokenizer.errors import CodecError

from .corpora import CORPORA, get_corpus
from .errors import CorpusError
from .shards import ShardWriter, completed_shards, plan_shards, write_manifest

logger = logging.getLogger("tokenize-corpus")


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
            return {"id": utt_id, "audio": audio, "error": None}
        except CodecError as exc:
            return {"id": utt_id, "audio": None, "error": str(exc)}


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


def _phonemes(utts, no_phonemes: bool):
    """Phoneme strings and ids for every utterance (None where unavailable) and the vocabulary."""
    if no_phonemes:
        return {}, None
    from .text.phonemize import phonemize
    from .text.vocab import PhonemeVocab

    texts = [u.normalized_text or "" for u in utts]
    try:
        strings = phonemize(texts, [u.language for u in utts])
    except CorpusError as exc:
        logger.warning("no phonemes: %s", exc)
        return {}, None
    vocab = PhonemeVocab.build(strings)
    return {u.id: s for u, s in zip(utts, strings)}, vocab


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
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except CodecError as exc:  # CorpusError included: a user-caused problem, reported without a traceback
        print(f"tokenize-corpus: error: {exc}", file=sys.stderr)
        return 2


def _run(args) -> int:
    from tokenizer import AutoCodecTokenizer

    from .text.normalize import normalize_text

    if args.shard_size < 1 or args.batch_seconds <= 0 or args.num_workers < 0:
        raise CorpusError("--shard-size must be >= 1, --batch-seconds > 0 and --num-workers >= 0")
    subsets = args.subsets.split(",") if args.subsets else None
    kwargs = {"language": args.language} if args.language else {}
    corpus = get_corpus(args.corpus, root=args.root, subsets=subsets, **kwargs)
    tok = AutoCodecTokenizer.from_pretrained(args.codec, device=args.device)
    if args.quantization:
        _set_quantization(tok, args.quantization)
    k = tok.model.check_num_quantizers(args.num_quantizers)
    rank, world, barrier = _distributed()
    out = Path(args.out or f"tokens/{args.corpus}-{Path(str(args.codec)).name}")
    out.mkdir(parents=True, exist_ok=True)
    codec_info = {"name": str(args.codec), **tok.codec_info(k)}

    utts = list(corpus)
    listing_skipped = [{"id": None, "path": item, "reason": why} for item, why in corpus.skipped]
    if not utts:
        raise CorpusError(f"corpus {args.corpus} at {corpus.root} yielded no utterances")
    for u in utts:
        if u.normalized_text is None:
            u.normalized_text = normalize_text(u.text, u.language)
    phon, vocab = _phonemes(utts, args.no_phonemes)
    by_id = {u.id: u for u in utts}
    plans = plan_shards(list(by_id), args.shard_size, rank, world)
    done = completed_shards(out, plans, config_hash=codec_info["config_hash"])
    todo = [p for p in plans if p.name not in done]
    if rank == 0 and vocab is not None:
        vocab.save(out / "phonemes.json")
    if rank == 0 and args.sentencepiece:
        from .text.spm import train_sentencepiece

        train_sentencepiece([u.normalized_text for u in utts if u.normalized_text], str(out / "spm"),
                            vocab_size=args.sentencepiece)
    logger.info("%s: %d utterances in %d shards (%d finished before, %d to do on rank %d/%d), codec %s",
                args.corpus, len(utts), plans[0].num_shards if plans else 0, len(done), len(todo), rank, world, tok)

    items = [(i, by_id[i].audio) for p in todo for i in p.ids]
    loader = DataLoader(_AudioReader(items, tok.sampling_rate), batch_size=None, num_workers=args.num_workers,
                        prefetch_factor=8 if args.num_workers else None)
    stats = collections.Counter()
    reasons = collections.Counter()
    t0 = time.perf_counter()
    encode_time = 0.0
    max_samples = int(args.batch_seconds * tok.sampling_rate)
    bar = tqdm(total=None, unit="h", desc="audio", bar_format="{desc}: {n:.3f} h [{elapsed}, {rate_fmt}] {postfix}",
               disable=None)
    stream = iter(loader)
    with ShardWriter(out, todo, tok.codebook_size, config_hash=codec_info["config_hash"]) as writer:
        for n_shard, plan in enumerate(todo):
            if args.stop_after_shards is not None and n_shard >= args.stop_after_shards:
                raise KeyboardInterrupt  # test hook: behave like a kill between shards
            loaded = [next(stream) for _ in plan.ids]
            good = [x for x in loaded if x["audio"] is not None]
            codes: dict[str, np.ndarray] = {}
            lengths = [len(x["audio"]) for x in good]
            order = sorted(range(len(good)), key=lambda i: lengths[i])
            for batch in _batches(order, lengths, max_samples):
                te = time.perf_counter()
                enc = tok([good[i]["audio"] for i in batch], sampling_rate=tok.sampling_rate, num_quantizers=k)
                encode_time += time.perf_counter() - te
                for j, i in enumerate(batch):
                    codes[good[i]["id"]] = enc[j].numpy()
            for x in loaded:
                u = by_id[x["id"]]
                source = u.audio if isinstance(u.audio, str) else f"<bytes of {u.id}>"
                if x["audio"] is None:
                    writer.skip(u.id, source, x["error"])
                    reasons[x["error"].split(":")[0]] += 1
                    continue
                seconds = len(x["audio"]) / tok.sampling_rate
                record = {"id": u.id, "speaker": u.speaker, "text": u.text, "normalized_text": u.normalized_text,
                          "phonemes": phon.get(u.id), "language": u.language, "duration": seconds,
                          "num_frames": int(codes[u.id].shape[-1]), "num_samples": len(x["audio"]),
                          **{key: v for key, v in u.extra.items() if isinstance(v, (str, int, float, bool))}}
                ids = None
                if vocab is not None:
                    ids = np.asarray(vocab.encode(phon[u.id]) if phon.get(u.id) else [], dtype=np.int32)
                writer.write(record, codes[u.id], ids)
                stats["utterances"] += 1
                stats["samples"] += len(x["audio"])
                stats["tokens"] += codes[u.id].size
                bar.update(seconds / 3600)
            bar.set_postfix_str(f"{stats['utterances']} utts, shard {n_shard + 1}/{len(todo)}")
    bar.close()
    barrier()
    summary = {"rank": rank, **stats}
    if rank == 0:
        corpus_info = {"name": args.corpus, "root": str(corpus.root), "subsets": subsets,
                       "phoneme_vocab": "phonemes.json" if vocab is not None else None,
                       "sentencepiece": "spm.model" if args.sentencepiece else None}
        manifest = write_manifest(out, codec_info, corpus_info, extra_skipped=listing_skipped)
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
