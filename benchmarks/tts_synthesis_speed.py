"""Synthesis speed of VALL-E on CPU: AR, NAR and codec decoding as real-time factors (compute s / audio s), the
decoding paths side by side in one process, at several batch sizes.

    python benchmarks/tts_synthesis_speed.py [--preset small] [--seconds 5] [--batch 1 4 16] [--threads 2]
        [--paths dynamic static int8] [--json out.json]

Random VALL-E weights (speed does not depend on them) shaped for the shipped Language-Codec (50 Hz, 8 x 1024
codes, 16 kHz), whose decoder turns the codes into audio. A 3 s prompt and 60 phonemes per sentence; the AR is
held to `--seconds` of output (EOS off until then), then the NAR fills codebooks 2..8. Paths:
- `dynamic`: the AR through transformers' forward with its `DynamicCache` (the decoding before issue 28; the
  reference every ratio is taken against);
- `static`: the default, `tts.valle.decoding.StaticCacheDecoder` (preallocated cache, in-place updates);
- `int8`: `static` on a copy whose Linear layers are dynamically quantized to int8 (`torch.ao`), the optional
  CPU deployment path; its quality cost is measured on a trained model, not here.
Lower RTF is faster; throughput = audio seconds per wall second of the whole batch (AR + NAR + decoding).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time

import torch

from tokenizer import AutoCodecTokenizer
from tts.generation import GenerationConfig
from tts.valle import ValleConfig, ValleModel


def quantized(model: ValleModel) -> ValleModel:
    """A copy with every nn.Linear dynamically quantized to int8 (weights int8, activations per batch)."""
    return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)


def run_once(model, codec, batch: int, seconds: float, static: bool) -> dict:
    fr, k = codec.frame_rate, codec.num_quantizers
    g = torch.Generator().manual_seed(batch)
    phonemes = [torch.randint(5, 100, (60,), generator=g) for _ in range(batch)]
    prompts = [torch.randint(0, codec.codebook_size, (k, round(3 * fr)), generator=g) for _ in range(batch)]
    frames = round(seconds * fr)
    gen = GenerationConfig(do_sample=True, min_frames=frames, max_seconds_per_phoneme=frames / 60 / fr,
                           static_cache=static)
    t0 = time.perf_counter()
    first = model.ar.generate(phonemes, [p[0] for p in prompts], [gen.max_frames(60, fr)] * batch, gen)
    t1 = time.perf_counter()
    codes = model.nar.generate(phonemes, prompts, first)
    t2 = time.perf_counter()
    codec.batch_decode(torch.stack(codes))
    t3 = time.perf_counter()
    audio = seconds * batch
    return {"rtf_ar": (t1 - t0) / audio, "rtf_nar": (t2 - t1) / audio, "rtf_codec_decode": (t3 - t2) / audio,
            "rtf_total": (t3 - t0) / audio, "throughput": audio / (t3 - t0), "ar_ms_per_step": 1000 * (t1 - t0) /
            (frames + 1)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--batch", type=int, nargs="+", default=[1])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--paths", nargs="+", default=["dynamic", "static"], choices=["dynamic", "static", "int8"])
    p.add_argument("--repeats", type=int, default=1, help="runs per (path, batch); the fastest is kept")
    p.add_argument("--codec", default="language-codec")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    logging.getLogger("tts.valle.modeling").setLevel(logging.ERROR)  # "no EOS": wanted here, the length is forced
    torch.set_num_threads(args.threads)
    codec = AutoCodecTokenizer.from_pretrained(args.codec)
    torch.manual_seed(0)
    model = ValleModel(ValleConfig.preset(args.preset, num_quantizers=codec.num_quantizers,
                                          codebook_size=codec.codebook_size, phoneme_vocab_size=100,
                                          frame_rate=codec.frame_rate, dropout=0.0)).eval()
    models = {"dynamic": (model, False), "static": (model, True)}
    if "int8" in args.paths:
        models["int8"] = (quantized(model).eval(), True)
    rows = []
    for batch in args.batch:
        for path in args.paths:
            m, static = models[path]
            best = min((run_once(m, codec, batch, args.seconds, static) for _ in range(args.repeats)),
                       key=lambda r: r["rtf_total"])
            rows.append({"path": path, "batch": batch, **best})
    ref = {r["batch"]: r for r in rows if r["path"] == args.paths[0]}
    one = {r["path"]: r for r in rows if r["batch"] == min(args.batch)}
    for r in rows:
        r[f"speedup_vs_{args.paths[0]}"] = ref[r["batch"]]["rtf_total"] / r["rtf_total"]
        r["throughput_vs_batch_" + str(min(args.batch))] = r["throughput"] / one[r["path"]]["throughput"]
    result = {"preset": args.preset, "threads": args.threads, "seconds": args.seconds, "rows": rows}
    print(f"VALL-E {args.preset}, {args.threads} threads, {args.seconds:g} s per sentence (RTF: lower is faster)")
    print(f"{'path':<8} {'batch':>5} {'AR ms/step':>10} {'RTF AR':>7} {'RTF NAR':>7} {'RTF dec':>7} {'RTF total':>9} "
          f"{'x ' + args.paths[0]:>10} {'audio s/s':>9} {'x batch ' + str(min(args.batch)):>10}")
    for r in rows:
        print(f"{r['path']:<8} {r['batch']:>5} {r['ar_ms_per_step']:>10.1f} {r['rtf_ar']:>7.3f} {r['rtf_nar']:>7.3f} "
              f"{r['rtf_codec_decode']:>7.3f} {r['rtf_total']:>9.3f} {r[f'speedup_vs_{args.paths[0]}']:>10.2f} "
              f"{r['throughput']:>9.2f} {r['throughput_vs_batch_' + str(min(args.batch))]:>10.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
