"""Real-time factor of MobileSpeech vs VALL-E (with its KV cache): same preset size, texts, prompt, codec shape.

    python benchmarks/tts_speed_mobilespeech.py [--preset small] [--seconds 10] [--threads 2] [--steps 16 1]

Random weights are fine for speed, but they decide nothing about length, so both models are made to
produce exactly `--seconds` of codes for a text of `--phonemes` phonemes: VALL-E's end-of-speech is
suppressed until its length cap (`min_frames` = cap = frames wanted), MobileSpeech's duration predictor is
set to a constant duration per phoneme. Token generation only (the codec decoder is the same for both and
left out). RTF = generation seconds / generated audio seconds (lower is faster); median of `--repeats`
runs, the models interleaved. The issue's goal: MobileSpeech at least 5x faster than VALL-E on CPU.
"""

from __future__ import annotations

import argparse
import logging
import math

import torch

from tts.generation import GenerationConfig
from tts.mobilespeech import MaskDecodingConfig, MobileSpeechConfig, MobileSpeechModel
from tts.valle import ValleConfig, ValleModel
from timing import median_time



def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="small", help="paper | small | tiny (the same for both models)")
    p.add_argument("--num-quantizers", type=int, default=8)
    p.add_argument("--codebook-size", type=int, default=1024)
    p.add_argument("--frame-rate", type=float, default=75.0)
    p.add_argument("--seconds", type=float, default=10.0, help="speech to generate per sentence")
    p.add_argument("--phonemes", type=int, default=120, help="phonemes of the text to say")
    p.add_argument("--prompt-seconds", type=float, default=3.0)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, nargs="+", default=None, help="MobileSpeech iterations per level")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--overrides", default="", help="model config overrides for both, e.g. hidden_size=64,num_hidden_layers=1")
    args = p.parse_args(argv)
    logging.getLogger("tts.valle.modeling").setLevel(logging.ERROR)  # "no EOS": wanted here, the length is forced
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shared = dict(num_quantizers=args.num_quantizers, codebook_size=args.codebook_size, phoneme_vocab_size=128,
                  frame_rate=args.frame_rate, dropout=0.0)
    extra = dict(kv.split("=") for kv in args.overrides.split(",") if kv)
    extra = {k: int(v) for k, v in extra.items()}
    valle = ValleModel(ValleConfig.preset(args.preset, **shared, **{k: v for k, v in extra.items() if k in ValleConfig().to_dict()})).eval()
    ms = MobileSpeechModel(MobileSpeechConfig.preset(args.preset, **shared, aligner_feature_dim=96, **{
        k: v for k, v in extra.items() if k in MobileSpeechConfig().to_dict()})).eval()  # code vectors: zeros here

    frames = round(args.seconds * args.frame_rate)
    prompt_frames = round(args.prompt_seconds * args.frame_rate)
    with torch.no_grad():  # a constant duration per phoneme, so that the text takes `frames` frames
        ms.duration_out.weight.zero_()
        ms.duration_out.bias.fill_(math.log1p(frames / args.phonemes))
    g = torch.Generator().manual_seed(0)
    n_prompt_phonemes = max(1, round(args.phonemes * args.prompt_seconds / args.seconds))
    phonemes = [torch.randint(5, 100, (n_prompt_phonemes + args.phonemes,), generator=g) for _ in range(args.batch)]
    prompts = [torch.randint(0, args.codebook_size, (args.num_quantizers, prompt_frames), generator=g)
               for _ in range(args.batch)]
    targets = [args.phonemes] * args.batch
    per_phoneme = frames / args.phonemes / args.frame_rate  # VALL-E's length cap, in seconds per phoneme
    valle_cfg = GenerationConfig(do_sample=True, top_p=0.8, min_frames=frames, max_seconds_per_phoneme=per_phoneme, seed=0)
    ms_cfg = MaskDecodingConfig(do_sample=True, seed=0, steps_per_level=args.steps)

    got = {}

    def run_valle():
        got["valle"] = valle.generate(phonemes, prompts, targets, valle_cfg)

    def run_ms():
        got["ms"] = ms.generate(phonemes, prompts, targets, ms_cfg)

    with torch.inference_mode():
        t_valle = median_time(run_valle, args.repeats)
        t_ms = median_time(run_ms, args.repeats)
    audio = {k: sum(c.shape[-1] for c in v) / args.frame_rate for k, v in got.items()}
    rtf_valle, rtf_ms = t_valle / audio["valle"], t_ms / audio["ms"]
    steps = ms.config.level_steps(args.steps)
    params = {"valle": sum(p.numel() for p in valle.parameters()), "ms": sum(p.numel() for p in ms.parameters())}
    print(f"preset {args.preset}, K={args.num_quantizers} x {args.codebook_size} at {args.frame_rate:g} Hz, batch "
          f"{args.batch}, {args.phonemes} phonemes -> {args.seconds:g} s, prompt {args.prompt_seconds:g} s, "
          f"{args.threads} threads, random weights; MobileSpeech steps per level {steps}")
    print("| model | parameters | generated s | seconds | RTF |")
    print("|---|---|---|---|---|")
    print(f"| VALL-E (KV cache) | {params['valle'] / 1e6:.1f}M | {audio['valle']:.2f} | {t_valle:.2f} | {rtf_valle:.3f} |")
    print(f"| MobileSpeech | {params['ms'] / 1e6:.1f}M | {audio['ms']:.2f} | {t_ms:.2f} | {rtf_ms:.3f} |")
    print(f"MobileSpeech is {rtf_valle / rtf_ms:.1f}x faster (goal >= 5x)")
    return {"valle_rtf": rtf_valle, "mobilespeech_rtf": rtf_ms, "speedup": rtf_valle / rtf_ms, "audio": audio}


if __name__ == "__main__":
    main()
