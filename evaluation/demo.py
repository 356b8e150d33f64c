"""`codec-demo`: encode a clip to codes and decode it back, printing what happened.

    codec-demo [--codec language-codec] [--audio FILE] [--num-quantizers K] [--out DIR] [--random-weights]

Without --audio it uses the first utterance of the built-in sample corpus (`data_prep.sample_corpus`).
The command lives in `evaluation/` rather than `tokenizer/` because it reads that corpus: `tokenizer`
may not import `data_prep` (dependencies point tokenizer <- data_prep <- evaluation), and a round trip
with its rate and speed is a one-clip evaluation.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import soundfile as sf

from data_prep.sample_corpus import SAMPLE_ROOT
from tokenizer.auto import AutoCodecTokenizer
from tokenizer.utils.cli import run_cli
from tokenizer.utils.errors import CodecError


def sample_clip() -> Path:
    """The first wav of the built-in sample corpus."""
    clips = sorted(SAMPLE_ROOT.rglob("*.wav"))
    if not clips:
        raise CodecError(f"no sample audio under {SAMPLE_ROOT}; pass --audio FILE")
    return clips[0]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codec-demo", description="Encode a clip to codec tokens and decode it back.")
    p.add_argument("--codec", default="language-codec", help="codec name, local directory or hub id")
    p.add_argument("--audio", type=Path, default=None, help="audio file (default: a built-in sample utterance)")
    p.add_argument("--num-quantizers", type=int, default=None)
    p.add_argument("--out", type=Path, default=Path("demo_out"))
    p.add_argument("--random-weights", action="store_true",
                   help="allow a built-in codec name that ships no weights (untrained: its tokens mean nothing)")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_cli("codec-demo", _main, argv)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    path = args.audio or sample_clip()
    tok = AutoCodecTokenizer.from_pretrained(args.codec, random_weights=args.random_weights)
    t0 = time.perf_counter()
    enc = tok(str(path), num_quantizers=args.num_quantizers)
    t1 = time.perf_counter()
    wav = tok.batch_decode(enc)[0]
    t2 = time.perf_counter()
    seconds = len(wav) / tok.sampling_rate
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / (path.stem + ".decoded.wav")
    sf.write(out, wav, tok.sampling_rate)
    k = enc.codes.shape[1]
    print(f"{tok}")
    print(f"input   {path} ({seconds:.2f} s)")
    print(f"codes   {tuple(enc.codes.shape)} = {int(enc.lengths[0])} frames x {k} quantizers, "
          f"{tok.bitrate_for(k):g} bps; first frame {enc.codes[0, :, 0].tolist()}")
    print(f"speed   encode {seconds / (t1 - t0):.1f}x real-time, decode {seconds / (t2 - t1):.1f}x real-time")
    print(f"output  {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
