"""`codec-demo`: encode a clip to codes and decode it back, printing what happened.

    codec-demo [--codec language-codec] [--audio FILE] [--num-quantizers K] [--out DIR]

Without --audio it uses the first utterance of the built-in sample corpus.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import soundfile as sf

from .auto import AutoCodecTokenizer


def _sample_clip() -> Path:
    root = Path(__file__).resolve().parent.parent / "data_prep" / "sample_corpus"
    clips = sorted(root.rglob("*.wav"))
    if not clips:
        raise SystemExit(f"no sample audio under {root}; pass --audio FILE")
    return clips[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Encode a clip to codec tokens and decode it back.")
    p.add_argument("--codec", default="language-codec", help="codec name, local directory or hub id")
    p.add_argument("--audio", type=Path, default=None)
    p.add_argument("--num-quantizers", type=int, default=None)
    p.add_argument("--out", type=Path, default=Path("demo_out"))
    args = p.parse_args(argv)
    audio = args.audio or _sample_clip()
    tok = AutoCodecTokenizer.from_pretrained(args.codec)
    t0 = time.perf_counter()
    enc = tok(str(audio), num_quantizers=args.num_quantizers)
    t1 = time.perf_counter()
    wav = tok.batch_decode(enc)[0]
    t2 = time.perf_counter()
    seconds = len(wav) / tok.sampling_rate
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / (audio.stem + ".decoded.wav")
    sf.write(out, wav, tok.sampling_rate)
    k = enc.codes.shape[1]
    print(f"{tok}")
    print(f"input   {audio} ({seconds:.2f} s)")
    print(f"codes   {tuple(enc.codes.shape)} = {int(enc.lengths[0])} frames x {k} quantizers, "
          f"{tok.bitrate_for(k):g} bps; first frame {enc.codes[0, :, 0].tolist()}")
    print(f"speed   encode {seconds / (t1 - t0):.1f}x real-time, decode {seconds / (t2 - t1):.1f}x real-time")
    print(f"output  {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
