"""`train-tts` and `synthesize`: the two TTS commands.

    train-tts valle --data tokens/libritts-lc --preset tiny --out runs/valle-tiny --steps 2000
    train-tts valle --data A B --preset small --out runs/valle --stage ar --optim.lr=3e-4 --data.max_tokens=8000
    train-tts valle --data A --preset tiny --out runs/valle-tiny --resume       # after a kill: same losses
    accelerate launch --num_processes 2 -m tts.cli train valle --data A --out runs/x   # DDP (gloo on CPU)

    synthesize --model runs/valle-tiny/final --text "Hello there." --prompt-audio p.wav \
        --prompt-text "Transcript of p." --out o.wav
    synthesize --model runs/valle-tiny/final --manifest refs.jsonl --out-dir gen/     # then: evaluate-tts
    synthesize --model EXPORT --mode continuation --text "Whole transcript." --prompt-audio utt.wav --out o.wav

Manifest: `evaluate-tts`'s reference manifest (`id`, `text`, `reference_audio`, `prompt_audio`) plus
`prompt_text` (cross-sentence mode); continuation mode takes the first `--prompt-seconds` of `prompt_audio`
(else of `reference_audio`). A bad line is reported (`<out-dir>/skipped.jsonl`) and skipped; every other
line is synthesized to `<out-dir>/<id>.wav`. Beside every WAV (`--out` too), `<name>.wav.json` records the
mode, where the prompt part of the output ends and how much of the prompt file the model was given, so that
`evaluate-tts` scores the generated part only (format: `evaluation/evaluate_tts.py`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from tokenizer.utils.cli import run_cli
from tokenizer.utils.errors import CodecError
from training.config import to_dict
from training.run import print_summary

from .errors import TTSError, check_writable
from .generation import GenerationConfig
from .synthesis import Request, Synthesizer, sha256_hex, write_output
from .trainer import load_train_config, train

logger = logging.getLogger("tts")


# ----------------------------------------------------------------------------------------- train-tts
def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train-tts", description="Train a TTS model on token shards.",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Overrides: --section.key=value for any key of tts/trainer.py's TrainConfig.")
    p.add_argument("model", help="model to train: valle | mobilespeech")
    p.add_argument("--data", nargs="+", required=True, metavar="TOKENS_DIR", help="token shard directories")
    p.add_argument("--preset", default="tiny", help="tiny | small | paper")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the preset's)")
    p.add_argument("--stage", default=None, choices=("both", "ar", "nar"), help="which part to train")
    p.add_argument("--config", default=None, help="YAML training config (applied over the preset)")
    p.add_argument("--resume", nargs="?", const="latest", default=None,
                   help="continue from the latest <out>/state/step-N, or from the given state directory")
    p.add_argument("--print-config", action="store_true", help="print the merged config and exit")
    return p


def train_main(argv: list[str] | None = None) -> int:
    return run_cli("train-tts", _train, argv)


def _train(argv):
    import yaml



    args, rest = train_parser().parse_known_args(argv)
    overrides = list(rest) + [f"--out_dir={args.out}"]
    if args.steps is not None:
        overrides.append(f"--steps={args.steps}")
    if args.stage is not None:
        overrides.append(f"--stage={args.stage}")
    if args.resume is not None:
        overrides.append(f"--resume={args.resume}")
    cfg = load_train_config(args.model, args.preset, args.config, overrides)
    cfg.data.dirs = list(args.data)
    if args.print_config:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0
    result = train(cfg)
    if not result.is_main_process:
        return 0
    keys = ("loss", "ar/top10", "valid/ar/loss", "valid/ar/top10", "smd/acc", "duration/loss", "valid/smd/acc")
    print_summary(result, cfg.steps, {k: v for k, v in result.last_logs.items() if k in keys},
                  extra=f"; non-finite steps skipped: {result.nonfinite_steps}")
    return 0


# ----------------------------------------------------------------------------------------- synthesize
def synth_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="synthesize", description="Zero-shot TTS with a trained export.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="export directory (train-tts writes <out>/final)")
    p.add_argument("--text", help="what to say (continuation mode: the whole transcript)")
    p.add_argument("--prompt-audio", help="prompt recording")
    p.add_argument("--prompt-text", help="the prompt's transcript (cross-sentence mode)")
    p.add_argument("--out", help="output WAV (single-sentence mode)")
    p.add_argument("--manifest", help="JSONL of sentences (evaluate-tts reference manifest + prompt_text)")
    p.add_argument("--out-dir", help="output folder for --manifest")
    p.add_argument("--mode", default="cross-sentence", choices=("cross-sentence", "continuation"))
    p.add_argument("--prompt-seconds", type=float, default=3.0, help="continuation: prompt length")
    p.add_argument("--codec", default=None, help="load the codec from here instead of the recorded name "
                                                 "(it must be the same codec: hash and digest are checked)")
    p.add_argument("--batch-size", type=int, default=8, help="sentences generated together")
    decoding = p.add_mutually_exclusive_group()
    decoding.add_argument("--sample", action="store_true", help="sample (temperature, top-k, top-p with VALL-E 2's "
                          "repetition-aware sampling) instead of greedy decoding, the default (tts/generation.py)")
    decoding.add_argument("--greedy", action="store_true", help="greedy decoding (the default; kept for old commands)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=0.8)
    p.add_argument("--max-seconds-per-phoneme", type=float, default=0.4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--speed", type=float, default=None, help="speaking rate, durations divided by it (MobileSpeech)")
    p.add_argument("--steps-per-level", type=int, nargs="+", default=None,
                   help="decoding iterations per codebook level, the last repeated (MobileSpeech; default 16 1)")
    return p


def model_generation_config(model, gen, **extra):
    """`gen` as the model's own decoding settings (`model.tts_generation_config_class`, e.g. MobileSpeech's
    `MaskDecodingConfig`) with the `extra` fields that were given; a field the model has no use for is
    refused (one line naming the flag) rather than ignored."""
    import dataclasses

    cls = getattr(model, "tts_generation_config_class", type(gen))
    given = {k: v for k, v in extra.items() if v is not None}
    names = {f.name for f in dataclasses.fields(cls)}
    for key in given:
        if key not in names:
            raise TTSError(f"--{key.replace('_', '-')} does not apply to {model.config.model_type} models")
    return cls(**{**dataclasses.asdict(gen), **given})


def synth_main(argv: list[str] | None = None) -> int:
    return run_cli("synthesize", _synthesize, argv)


def safe_output_id(rid: str) -> str | None:
    """Why `rid` cannot name an output file `<out-dir>/<rid>.wav` (a path separator, `.`/`..`, a leading dot,
    a control character), or None when it can: an id never writes outside `--out-dir`."""
    if "/" in rid or "\\" in rid or rid in (".", "..") or rid.startswith(".") or any(ord(c) < 32 for c in rid):
        return f"id {rid!r} is not a plain file name (no path separators, leading dot or control characters)"
    return None


def read_requests(path: Path, mode: str, out_dir: Path | None = None) -> tuple[list, list[dict]]:
    """(requests, bad lines) of a manifest: a line that is not JSON, lacks `id`/`text`, or (cross-sentence)
    `prompt_audio`/`prompt_text`, has a field of the wrong type, an id that is not a plain file name, or whose
    output `<out_dir>/<id>.wav` would be one of the manifest's own audio files, is recorded as
    {"line", "id", "reason"} and left out."""

    if not path.is_file():
        raise TTSError(f"manifest not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise TTSError(f"manifest {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    requests, bad, seen, rows = [], [], set(), []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            bad.append({"line": n, "id": None, "reason": f"not a JSON object ({exc})"})
            continue
        rows.append((n, row))
    # every audio file the manifest names: an output must never overwrite one of them
    inputs = {(path.parent / r[k]).resolve() for _, r in rows for k in ("prompt_audio", "reference_audio")
              if isinstance(r.get(k), str) and r[k]}
    for n, row in rows:
        rid = row.get("id")
        if isinstance(rid, int) and not isinstance(rid, bool):  # {"id": 7} is "7", as evaluate-tts reads it
            rid = str(rid)
            row = {**row, "id": rid}
        wrong = [k for k in ("prompt_audio", "reference_audio", "prompt_text")
                 if row.get(k) is not None and not isinstance(row.get(k), str)]
        if wrong:
            bad.append({"line": n, "id": rid, "reason": f"{wrong[0]} must be a string, got "
                                                        f"{type(row[wrong[0]]).__name__}"})
            continue
        if isinstance(rid, str) and rid:
            unsafe = safe_output_id(rid)
            if not unsafe and out_dir is not None and (out_dir / f"{rid}.wav").resolve() in inputs:
                unsafe = f"its output {out_dir / (rid + '.wav')} is an audio file of the manifest: not overwritten"
            if unsafe:
                bad.append({"line": n, "id": rid, "reason": unsafe})
                continue
        missing = [k for k in ("id", "text") if not isinstance(row.get(k), str) or not row.get(k)]
        audio = row.get("prompt_audio") or (row.get("reference_audio") if mode == "continuation" else None)
        if not audio:
            missing.append("prompt_audio" if mode == "cross-sentence" else "prompt_audio or reference_audio")
        if mode == "cross-sentence" and not row.get("prompt_text"):
            missing.append("prompt_text")
        if missing:
            bad.append({"line": n, "id": rid, "reason": f"missing {', '.join(missing)}"})
            continue
        if rid in seen:
            bad.append({"line": n, "id": rid, "reason": f"duplicate id {rid!r}"})
            continue
        seen.add(rid)
        audio = Path(audio) if Path(audio).is_absolute() else path.parent / audio
        requests.append((n, Request(row["text"], audio, row.get("prompt_text"), mode, str(rid))))
    return requests, bad


def check_outputs(out: str | None, out_dir: str | None) -> None:
    """TTSError (one line, before any model is loaded) for an output that cannot be written: `--out` not a
    `.wav` name (the output is WAV) or an existing folder, `--out-dir` an existing file, or a parent that is a
    file."""
    if out is not None:
        path = Path(out)
        if path.suffix.lower() != ".wav":
            raise TTSError(f"--out {out}: give a .wav file name (the output is WAV)")
        if path.is_dir():
            raise TTSError(f"--out {out} is a folder: give a .wav file name")
        parents = path.parents
    else:
        path = Path(out_dir)
        if path.exists() and not path.is_dir():
            raise TTSError(f"--out-dir {out_dir} is a file, not a folder")
        parents = (path, *path.parents)
    for parent in parents:
        if parent.exists():
            if not parent.is_dir():
                raise TTSError(f"cannot write under {parent}: it is a file, not a folder")
            break
    if out is not None:
        check_writable(path.parent, f"--out {out}")
    else:
        check_writable(path, f"--out-dir {out_dir}")


def check_device(device: str) -> None:
    """TTSError for a `--device` torch cannot use here (e.g. cuda with a CPU-only torch)."""
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError as exc:
        raise TTSError(f"--device {device!r}: {exc}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise TTSError(f"--device {device!r}: this torch has no CUDA device (use --device cpu)")


def remove_stale_outputs(out_dir: Path, ids: list) -> None:
    """A line skipped in this run must not leave an earlier run's `<id>.wav` behind, which `evaluate-tts` would
    score as this run's: remove the outputs of `ids` that `synthesize` wrote, i.e. whose `<id>.wav.json` record
    holds the sha256 of the WAV's bytes as they are. Any other WAV (no record, an older record, or replaced
    since) may be someone's recording: it is left alone, with a warning."""
    for rid in ids:
        if not isinstance(rid, str) or not rid or safe_output_id(rid):
            continue
        wav, record = out_dir / f"{rid}.wav", out_dir / f"{rid}.wav.json"
        try:
            written = json.loads(record.read_text(encoding="utf-8")).get("audio_sha256")
        except (OSError, ValueError, AttributeError):
            written = None
        if wav.is_file() and written and written == sha256_hex(wav.read_bytes()):
            wav.unlink()
            record.unlink()
            print(f"synthesize: removed {wav} (an earlier run's output for a line skipped now)", file=sys.stderr)
        elif wav.exists():
            print(f"synthesize: warning: {wav} is not from this run (its line was skipped) and is not known to be "
                  f"an output of synthesize: left as it is", file=sys.stderr)


def _synthesize(argv) -> int:
    args = synth_parser().parse_args(argv)
    single = args.manifest is None
    if single and (args.out is None or args.text is None or args.prompt_audio is None):
        raise TTSError("give --text, --prompt-audio and --out (or --manifest and --out-dir)")
    if not single and args.out_dir is None:
        raise TTSError("--manifest needs --out-dir")
    if args.batch_size < 1:
        raise TTSError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not 0 < args.prompt_seconds < math.inf:  # NaN fails the comparison too
        raise TTSError(f"--prompt-seconds must be a number of seconds > 0, got {args.prompt_seconds}")
    check_outputs(args.out if single else None, None if single else args.out_dir)
    check_device(args.device)
    gen = GenerationConfig(do_sample=args.sample, temperature=args.temperature, top_k=args.top_k,
                           top_p=args.top_p, max_seconds_per_phoneme=args.max_seconds_per_phoneme, seed=args.seed)
    synth = Synthesizer.from_pretrained(args.model, args.codec, args.device)
    gen = model_generation_config(synth.model, gen, speed=args.speed, steps_per_level=args.steps_per_level)
    sr = synth.sampling_rate
    if single:
        if Path(args.out).resolve() == Path(args.prompt_audio).resolve():
            raise TTSError(f"--out {args.out} is the prompt audio: not overwritten; give another file name")
        req = Request(args.text, args.prompt_audio, args.prompt_text, args.mode, Path(args.out).stem)
        output = synth.synthesize_outputs([req], [synth.prepare(req, args.prompt_seconds)], gen)[0]
        write_output(args.out, output, req)
        print(f"synthesize: {args.out}: {len(output.audio) / sr:.2f} s at {sr} Hz")
        return 0

    from tqdm.auto import tqdm

    manifest = Path(args.manifest).expanduser()
    out_dir = Path(args.out_dir)
    if manifest.resolve() == (out_dir / "skipped.jsonl").resolve():  # e.g. re-running the lines skipped before
        raise TTSError(f"--manifest {manifest} is the skipped.jsonl this run writes in --out-dir: copy it elsewhere")
    requests, bad = read_requests(manifest, args.mode, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ready = []
    for n, req in requests:
        try:
            ready.append((n, req, synth.prepare(req, args.prompt_seconds)))
        except CodecError as exc:  # TTSError and AudioError: this line only
            bad.append({"line": n, "id": req.id, "reason": str(exc)})
    for b in sorted(bad, key=lambda b: b["line"]):
        print(f"synthesize: {manifest}:{b['line']}: skipped ({b['id'] or 'no id'}): {b['reason']}", file=sys.stderr)
    remove_stale_outputs(out_dir, [b["id"] for b in bad if b["id"] not in {req.id for _, req, _ in ready}])
    # Batches of sentences of similar length (text to say, then prompt), so padding stays small; every model
    # generates an item alike whatever else is in its batch, so the order changes no output.
    ready.sort(key=lambda c: (c[2].target, c[2].codes.shape[-1]))
    done, seconds = 0, 0.0
    for start in tqdm(range(0, len(ready), args.batch_size), desc="synthesize", disable=None):
        chunk = ready[start : start + args.batch_size]
        outputs = synth.synthesize_outputs([c[1] for c in chunk], [c[2] for c in chunk], gen)
        for (_, req, _), output in zip(chunk, outputs):
            write_output(out_dir / f"{req.id}.wav", output, req)
            done += 1
            seconds += len(output.audio) / sr
    (out_dir / "skipped.jsonl").write_text("".join(json.dumps(b) + "\n" for b in sorted(bad, key=lambda b: b["line"])))
    print(f"synthesize: {done} sentences ({seconds:.1f} s of audio) -> {out_dir}; {len(bad)} lines skipped"
          + (f" (see {out_dir / 'skipped.jsonl'})" if bad else ""))
    return 0 if done or not requests and not bad else 1


def main(argv: list[str] | None = None) -> int:
    """`python -m tts.cli train ...` / `python -m tts.cli synthesize ...` (for accelerate launch)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        return train_main(argv[1:])
    if argv and argv[0] == "synthesize":
        return synth_main(argv[1:])
    print("usage: python -m tts.cli {train,synthesize} ...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
