"""Synthesis speed of VALL-E on CPU: AR, NAR and codec decoding as real-time factors (compute s / audio s).

    python benchmarks/tts_synthesis_speed.py [--preset small] [--seconds 5] [--batch 1] [--threads 2]

Random VALL-E weights (speed does not depend on them) shaped for the shipped Language-Codec (50 Hz, 8 x 1024
codes, 16 kHz), whose decoder turns the codes into audio. A 3 s prompt and 60 phonemes; the AR is held to
`--seconds` of output (EOS off until then), then the NAR fills codebooks 2..8 greedily. Lower RTF is faster.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from tokenizer import AutoCodecTokenizer
from tts.generation import GenerationConfig
from tts.valle import ValleConfig, ValleModel


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--codec", default="language-codec")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    codec = AutoCodecTokenizer.from_pretrained(args.codec)
    fr, k = codec.frame_rate, codec.num_quantizers
    torch.manual_seed(0)
    model = ValleModel(ValleConfig.preset(args.preset, num_quantizers=k, codebook_size=codec.codebook_size,
                                          phoneme_vocab_size=100, frame_rate=fr, dropout=0.0)).eval()
    frames = round(args.seconds * fr)
    phonemes = [torch.randint(5, 100, (60,)) for _ in range(args.batch)]
    prompts = [torch.randint(0, codec.codebook_size, (k, round(3 * fr))) for _ in range(args.batch)]
    gen = GenerationConfig(do_sample=True, min_frames=frames, max_seconds_per_phoneme=frames / 60 / fr)
    audio_seconds = args.seconds * args.batch
    t0 = time.perf_counter()
    first = model.ar.generate(phonemes, [p[0] for p in prompts], [gen.max_frames(60, fr)] * args.batch, gen)
    t_ar = time.perf_counter() - t0
    t0 = time.perf_counter()
    codes = model.nar.generate(phonemes, prompts, first)
    t_nar = time.perf_counter() - t0
    t0 = time.perf_counter()
    audio = codec.batch_decode(torch.stack(codes))
    t_dec = time.perf_counter() - t0
    result = {"preset": args.preset, "batch": args.batch, "threads": args.threads, "audio_seconds": audio_seconds,
              "rtf_ar": t_ar / audio_seconds, "rtf_nar": t_nar / audio_seconds,
              "rtf_codec_decode": t_dec / audio_seconds,
              "rtf_total": (t_ar + t_nar + t_dec) / audio_seconds, "decoded_samples": int(sum(len(a) for a in audio))}
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
