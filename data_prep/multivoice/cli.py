"""`build-multivoice-corpus`: the command over `data_prep.multivoice.build_multivoice_corpus`.

    build-multivoice-corpus --out DIR [--seed 0] [--engines espeak-ng,flite,festival,piper]
                            [--real-root DIR | --no-real] [--no-asterisk] [--texts FILE ...]

Ends with a summary: voices, utterances and hours per subset and source, engines used and skipped,
what was dropped and why. Bad input ends in one `build-multivoice-corpus: error: ...` line; an
interrupted run resumes when re-run with the same options.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tokenizer.utils.cli import run_cli

from .builder import DEFAULT_REAL_ROOT, build_multivoice_corpus
from .engines import ENGINES
from .split import HELD_OUT_LIBRISPEECH
from .whisper import WhisperSegments

PROG = "build-multivoice-corpus"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="corpus folder (LibriTTS layout + split.json)")
    p.add_argument("--seed", type=int, default=0, help="decides the held-out voices and sentences")
    p.add_argument("--engines", default=",".join(ENGINES),
                   help=f"comma-separated synthesizers (default: {','.join(ENGINES)}; uninstalled ones are skipped)")
    p.add_argument("--real-root", type=Path, default=DEFAULT_REAL_ROOT,
                   help="<speaker>-<chapter>-<utterance>.flac files without transcripts (default: %(default)s)")
    p.add_argument("--no-real", action="store_true", help="no LibriSpeech-style real speech")
    p.add_argument("--no-asterisk", action="store_true", help="no Debian Asterisk prompts (speaker and sentences)")
    p.add_argument("--texts", type=Path, action="append", default=[],
                   help="more sentences for the synthetic voices, one a line (repeatable)")
    p.add_argument("--train-sentences", type=int, default=30, help="training sentences per training synthetic voice")
    p.add_argument("--test-sentences", type=int, default=10, help="held-out sentences per synthetic voice")
    p.add_argument("--held-out-synthetic", type=int, default=4, help="synthetic voices held out")
    p.add_argument("--held-out-real", default=",".join(HELD_OUT_LIBRISPEECH),
                   help="real speaker ids held out (default: the 20 the shipped codec held out)")
    p.add_argument("--min-seconds", type=float, default=1.0, help="real clips shorter than this are dropped")
    p.add_argument("--max-seconds", type=float, default=20.0,
                   help="real clips longer than this are dropped (Asterisk prompts: their texts too)")
    p.add_argument("--sampling-rate", type=int, default=16000, help="of every written file, Hz")
    p.add_argument("--whisper-dir", type=Path, default=None, help="another CTranslate2 Whisper model folder")
    p.add_argument("--no-progress", action="store_true")
    return p


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    real_root = None if args.no_real else args.real_root
    result = build_multivoice_corpus(
        args.out, seed=args.seed, engines=[e.strip() for e in args.engines.split(",") if e.strip()],
        real_root=real_root, asterisk=not args.no_asterisk, texts=args.texts,
        transcriber=WhisperSegments(args.whisper_dir) if real_root is not None and args.whisper_dir else None,
        train_sentences=args.train_sentences, test_sentences=args.test_sentences,
        held_out_synthetic=args.held_out_synthetic,
        held_out_real=[s.strip() for s in args.held_out_real.split(",") if s.strip()],
        min_seconds=args.min_seconds, max_seconds=args.max_seconds, sampling_rate=args.sampling_rate,
        progress=not args.no_progress)
    print(summary(result.record, result.written, result.reused, result.out))
    return 0


def summary(record: dict, written: int, reused: int, out: Path) -> str:
    """The closing summary: one line per subset and source, then engines, drops and notes."""
    lines = [f"{out}: {written} utterances written, {reused} already there"]
    for subset, c in record["counts"].items():
        lines.append(f"  {subset:<20} {c['voices']:>4} voices {c['utterances']:>6} utterances {c['hours']:7.3f} h")
        for source, s in c["by_source"].items():
            lines.append(f"    {source:<18} {s['voices']:>4} voices {s['utterances']:>6} utterances {s['hours']:7.3f} h")
    engines = record["engines"]
    lines.append(f"  engines used: {', '.join(engines['used']) or 'none'}")
    for name, why in {**engines["skipped"], **engines["skipped_voices"]}.items():
        lines.append(f"  skipped {name}: {why}")
    for reason, n in record["dropped"]["by_reason"].items():
        lines.append(f"  dropped {n}: {reason}")
    lines += [f"  note: {n}" for n in record["notes"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
