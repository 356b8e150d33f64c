"""VALL-E AR generation with and without the KV cache: seconds, speedup and whether the greedy tokens agree.

    python benchmarks/tts_kv_cache.py [--preset small] [--tokens 1000] [--threads 2] [--json out.json]

The issue's goal: 1,000 tokens with the `small` preset on CPU, cached >= 10x faster than recomputing the whole
sequence every step (lifeiteng/vall-e #142 expects 10-20x), identical greedy tokens. Random weights (speed does
not depend on them); a 3 s prompt (150 frames at 50 Hz, 8 x 1024 codes) and 60 phonemes; EOS is held off until
`--tokens` so both runs decode exactly that many steps. One run each (the recomputed run is the slow one).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from tts.generation import GenerationConfig
from tts.valle import ValleConfig, ValleModel


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--tokens", type=int, default=1000)
    p.add_argument("--prompt-frames", type=int, default=150)
    p.add_argument("--phonemes", type=int, default=60)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--json", default=None, help="also write the result here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = ValleConfig.preset(args.preset, num_quantizers=8, codebook_size=1024, phoneme_vocab_size=100,
                                frame_rate=50.0, dropout=0.0)
    model = ValleModel(config).eval()
    phonemes = [torch.randint(5, 100, (args.phonemes,))]
    prompt = [torch.randint(0, 1024, (8, args.prompt_frames))]
    per_phoneme = args.tokens / args.phonemes / config.frame_rate
    result = {"preset": args.preset, "tokens": args.tokens, "threads": args.threads,
              "ar_parameters": sum(t.numel() for t in model.ar.parameters())}
    codes = {}
    for use_cache in (True, False):
        gen = GenerationConfig(do_sample=False, use_cache=use_cache, min_frames=args.tokens,
                               max_seconds_per_phoneme=per_phoneme)
        t0 = time.perf_counter()
        codes[use_cache] = model.ar.generate(phonemes, [prompt[0][0]], [gen.max_frames(args.phonemes, 50.0)], gen)[0]
        result["seconds_cached" if use_cache else "seconds_recomputed"] = time.perf_counter() - t0
        print(f"{'cached' if use_cache else 'recomputed'}: {len(codes[use_cache])} tokens in "
              f"{result['seconds_cached' if use_cache else 'seconds_recomputed']:.1f} s", flush=True)
    result["speedup"] = result["seconds_recomputed"] / result["seconds_cached"]
    result["identical_tokens"] = bool(torch.equal(codes[True], codes[False]))
    result["generated"] = len(codes[True])
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
