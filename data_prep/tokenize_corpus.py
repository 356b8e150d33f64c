"""`tokenize-corpus`: a speech corpus -> webdataset token shards + manifest (the CLI over
`data_prep.pipeline.tokenize_corpus`, which Python code calls directly).

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
from pathlib import Path

import torch

from tokenizer.auto import AutoCodecTokenizer
from tokenizer.utils.cli import run_cli
from tokenizer.utils.errors import CodecError

from .corpora import CORPORA, get_corpus
from .errors import CorpusError
from .pipeline import tokenize_corpus
from .text.phonemize import espeak_available, get_backend

logger = logging.getLogger("tokenize-corpus")


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
    if not getattr(tok, "supports_post_hoc_quantization", False):
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


def _load_codec(args):

    tok = AutoCodecTokenizer.from_pretrained(args.codec, device=args.device, random_weights=args.random_weights)
    if args.random_weights:
        logger.warning("--random-weights: the tokens of an untrained %s codec are noise for any real use", tok.name)
    if args.quantization:
        _set_quantization(tok, args.quantization)
    return tok


def _run(args) -> int:
    out = _check_args(args)
    _check_phonemizer(args)
    subsets = args.subsets.split(",") if args.subsets else None
    kwargs = {"language": args.language} if args.language else {}
    corpus = get_corpus(args.corpus, root=args.root, subsets=subsets, **kwargs)
    tok = _load_codec(args)
    k = tok.model.check_num_quantizers(args.num_quantizers)
    rank, world, barrier = _distributed()
    result = tokenize_corpus(corpus, tok, out, num_quantizers=k, shard_size=args.shard_size,
                             phonemes=not args.no_phonemes, batch_seconds=args.batch_seconds,
                             num_workers=args.num_workers, sentencepiece=args.sentencepiece,
                             codec_name=str(args.codec), corpus_name=args.corpus, subsets=subsets, rank=rank,
                             world_size=world, barrier=barrier, stop_after_shards=args.stop_after_shards)
    stats = result.stats
    hours = stats["samples"] / tok.sampling_rate / 3600
    print(f"tokenize-corpus: {args.corpus} -> {out}")
    print(f"  this run: {stats['utterances']} utterances, {hours:.3f} h of audio, {stats['tokens']} tokens "
          f"({k} x {tok.codebook_size} codes at {tok.frame_rate:g} Hz, {tok.bitrate_for(k):g} bps)")
    if result.seconds > 0 and stats["samples"]:
        print(f"  throughput: {hours * 3600 / result.seconds:.1f}x real-time overall, "
              f"{hours * 3600 / max(result.encode_seconds, 1e-9):.1f}x in the encoder")
    if result.finished_before:
        print(f"  resumed: {result.finished_before} shards were already finished")
    summary = {"rank": rank, **stats}
    if result.manifest is not None:
        c = result.manifest["counts"]
        summary["manifest"] = c
        print(f"  output: {len(result.manifest['shards'])} shards, {c['utterances']} utterances, "
              f"{c['seconds'] / 3600:.3f} h, {c['skipped']} skipped (see skipped.jsonl)")
        listed = collections.Counter(s["reason"].split(":")[0] for s in result.listing_skipped)
        for reason, n in (result.skip_reasons + listed).most_common(5):
            print(f"    skipped {n}: {reason}")
    (out / f"summary-rank{rank}.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
