"""Encode/decode real-time factors of a codec next to transformers' EncodecModel (24 kHz), same process.

    python benchmarks/codec_speed.py [--codec language-codec] [--preset paper] [--seconds 10] [--threads 2]

Random weights are fine for speed. RTF = compute seconds / audio seconds (lower is faster); the ratio
column is ours / EnCodec's for the same batch and direction (below 1: we are faster). Timings on shared
CPUs vary run to run, which is why both models are measured here, interleaved, and the median is kept.
"""

from __future__ import annotations

import argparse

import torch
from transformers import EncodecConfig, EncodecModel

from tokenizer import AutoCodecConfig, AutoCodecTokenizer
from timing import median_time



def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--codec", default="language-codec")
    p.add_argument("--preset", default="paper")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tok = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model(args.codec, preset=args.preset))
    model = tok.model.eval()
    encodec = EncodecModel(EncodecConfig()).eval()  # facebook/encodec_24khz architecture, random init
    rows = []
    with torch.inference_mode():
        for b in args.batches:
            x = torch.randn(b, 1, int(args.seconds * tok.sampling_rate)) * 0.1
            xe = torch.randn(b, 1, int(args.seconds * 24000)) * 0.1
            ours_codes, _ = model.encode(x)
            enc_out = encodec.encode(xe, bandwidth=6.0)
            audio_s = b * args.seconds
            ours_enc = median_time(lambda: model.encode(x), args.repeats) / audio_s
            ref_enc = median_time(lambda: encodec.encode(xe, bandwidth=6.0), args.repeats) / audio_s
            ours_dec = median_time(lambda: model.decode(ours_codes), args.repeats) / audio_s
            ref_dec = median_time(lambda: encodec.decode(enc_out.audio_codes, enc_out.audio_scales), args.repeats) / audio_s
            rows += [
                {"batch": b, "direction": "encode", "ours_rtf": ours_enc, "encodec_rtf": ref_enc},
                {"batch": b, "direction": "decode", "ours_rtf": ours_dec, "encodec_rtf": ref_dec},
            ]
    print(f"{args.codec} ({args.preset}) vs transformers EncodecModel 24 kHz (6 kbps), {args.seconds:g} s clips, "
          f"{args.threads} threads, random weights")
    print("| batch | direction | ours RTF | EnCodec RTF | ours / EnCodec | ours x real-time |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch']} | {r['direction']} | {r['ours_rtf']:.4f} | {r['encodec_rtf']:.4f} | "
              f"{r['ours_rtf'] / r['encodec_rtf']:.2f} | {1 / r['ours_rtf']:.1f}x |")
    return rows


if __name__ == "__main__":
    main()
