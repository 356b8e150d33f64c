"""Peak memory of encoding long audio: chunked encoding keeps it bounded by the window, not the file.

    python benchmarks/long_audio.py [--codec language-codec] [--preset paper] [--minutes 5 60]

Each length runs in a fresh subprocess; the peak resident memory (ru_maxrss) is printed next to the size
of the input array itself. With chunking, the model's share (peak - input - baseline) stays about the
same from 5 minutes to an hour; the ratio column compares each length with the first.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _child(codec: str, preset: str, minutes: float) -> None:
    import numpy as np
    import torch

    from tokenizer import AutoCodecConfig, AutoCodecTokenizer

    torch.set_num_threads(2)
    tok = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model(codec, preset=preset))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n = int(minutes * 60 * tok.sampling_rate)
    audio = (0.1 * np.sin(np.arange(n, dtype=np.float32) * 0.05)).astype(np.float32)
    t0 = time.perf_counter()
    enc = tok(audio, sampling_rate=tok.sampling_rate, chunk_seconds=30.0, context_seconds=2.0, batch_size=4)
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"minutes": minutes, "frames": int(enc.lengths[0]), "input_mb": audio.nbytes / 2**20,
                      "baseline_mb": base / 1024, "peak_mb": peak / 1024, "seconds": elapsed}))


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--codec", default="language-codec")
    p.add_argument("--preset", default="paper")
    p.add_argument("--minutes", type=float, nargs="+", default=[5, 60])
    p.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        _child(args.codec, args.preset, args.child)
        return []
    rows = []
    for m in args.minutes:
        out = subprocess.run([sys.executable, __file__, "--codec", args.codec, "--preset", args.preset,
                              "--child", str(m)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    first = rows[0]["peak_mb"] - rows[0]["input_mb"] - rows[0]["baseline_mb"]
    print(f"{args.codec} ({args.preset}), chunk 30 s, context 2 s")
    print("| minutes | frames | input MB | peak MB | model MB (peak - input - baseline) | ratio | x real-time |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        model = r["peak_mb"] - r["input_mb"] - r["baseline_mb"]
        print(f"| {r['minutes']:g} | {r['frames']} | {r['input_mb']:.0f} | {r['peak_mb']:.0f} | {model:.0f} | "
              f"{model / first:.2f} | {r['minutes'] * 60 / r['seconds']:.1f}x |")
    return rows


if __name__ == "__main__":
    main()
