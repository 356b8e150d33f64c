"""Encode/decode real-time factors of every wrapped transformers codec family beside our codecs, through the
same tokenizer API (`tok(audio)`, `tok.decode(codes)`), at one input length and thread count.

    python benchmarks/transformers_codec_speed.py [--seconds 3] [--threads 1] [--repeats 3] [--skip xcodec]

Each family is built at transformers' default config size with random weights (fine for speed; the
codes mean nothing). Our codecs run their `paper` presets (Stable Codec: `small`, the paper preset has
953 M parameters). RTF = compute seconds / audio seconds (lower is faster), median of the repeats after a
warm-up, one clip. Families whose transformers classes need a package that is missing here are listed
as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import importlib.util

import numpy as np
import torch

from tokenizer import AutoCodecConfig, AutoCodecTokenizer
from tokenizer.registry import TRANSFORMERS_CODECS
from timing import median_time

OURS = {"language-codec": "paper", "stable-codec": "small", "rate-aware": "paper"}



def _transformers_tok(model_type: str):
    import transformers

    config = transformers.AutoConfig.for_model(model_type)
    return AutoCodecTokenizer.from_config(config)


def measure(tok, seconds: float, repeats: int) -> dict:
    sr = tok.sampling_rate
    audio = (0.1 * np.random.default_rng(0).standard_normal(int(seconds * sr))).astype(np.float32)
    enc = tok(audio, sampling_rate=sr)
    t_enc = median_time(lambda: tok(audio, sampling_rate=sr), repeats)
    t_dec = median_time(lambda: tok.decode(enc), repeats)
    params = sum(p.numel() for p in tok.model.parameters())
    return {"params_m": params / 1e6, "sr": sr, "frame_rate": tok.frame_rate, "k": tok.num_quantizers,
            "encode_rtf": t_enc / seconds, "decode_rtf": t_dec / seconds}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip", nargs="*", default=[], help="families or codecs to leave out")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    names = [(n, "ours") for n in OURS] + [(n, "transformers") for n in TRANSFORMERS_CODECS]
    for name, kind in names:
        if name in args.skip:
            rows.append({"codec": name, "kind": kind, "skipped": "--skip"})
            continue
        spec = TRANSFORMERS_CODECS.get(name)
        if spec is not None and spec.requires and importlib.util.find_spec(spec.requires) is None:
            rows.append({"codec": name, "kind": kind, "skipped": f"needs {spec.requires} (not installed)"})
            continue
        torch.manual_seed(0)
        if kind == "ours":
            tok = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model(name, preset=OURS[name]))
        else:
            tok = _transformers_tok(name)
        with torch.inference_mode():
            rows.append({"codec": name, "kind": kind, **measure(tok, args.seconds, args.repeats)})
        print(rows[-1], flush=True)
    print(f"\n{args.seconds:g} s of audio, {args.threads} thread(s), median of {args.repeats}, random weights\n")
    print("| codec | from | params (M) | rate (Hz) | frames (Hz) | K | encode RTF | decode RTF |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['codec']} | {r['kind']} | skipped: {r['skipped']} | | | | | |")
        else:
            print(f"| {r['codec']} | {r['kind']} | {r['params_m']:.1f} | {r['sr']} | {r['frame_rate']:g} | {r['k']} | "
                  f"{r['encode_rtf']:.3f} | {r['decode_rtf']:.3f} |")
    return rows


if __name__ == "__main__":
    main()
