"""End to end, text -> tokens -> audio: train the `tiny` VALL-E (or MobileSpeech, `--model`) on the built-in
sample corpus on CPU, then synthesize its sentences in continuation mode (first 1.5 s of each as prompt) and
score them.

    python benchmarks/tts_end_to_end.py --work runs/e2e [--model valle] [--minutes 15] [--steps N] [--skip-train]

1. `tokenize-corpus libritts --codec language-codec` (the shipped 50 Hz, 8 x 1024 Language-Codec).
2. `train-tts MODEL --preset tiny` with the preset's defaults, except that all 20 utterances are trained on
   (`--data.valid_utterances=0`: the demo asks whether the model reproduces its training data) and a wall-clock
   cap of `--minutes` (the issue: 15 minutes on 2 CPU cores).
3. For each utterance: continuation of its first 1.5 s with the whole transcript, greedy decoding.
Reported: the share of generated first-codebook tokens equal to the training tokens at the same frame (over the
frames after the prompt; goal >= 90%), the same share for every level, the length ratio generated/true, and
Whisper tiny.en WER of the synthesized speech beside the WER of the codec resynthesis of the same audio (goal: within 5 points).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from data_prep.sample_corpus import SAMPLE_ROOT


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="valle", help="valle | mobilespeech (the tiny preset of either)")
    p.add_argument("--work", default="runs/tts-e2e")
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--steps", type=int, default=None, help="default: the tiny preset's")
    p.add_argument("--prompt-seconds", type=float, default=1.5)
    p.add_argument("--skip-train", action="store_true", help="score the existing <work>/run/final")
    p.add_argument("--no-asr", action="store_true", help="skip the Whisper WER")
    args = p.parse_args(argv)
    work = Path(args.work)
    tokens, run = work / "tokens", work / "run"

    from data_prep.tokenize_corpus import main as tokenize_corpus
    from tts.cli import train_main

    if not (tokens / "manifest.json").is_file():
        assert tokenize_corpus(["libritts", "--codec", "language-codec", "--root", str(SAMPLE_ROOT),
                                "--out", str(tokens), "--num-workers", "0"]) == 0
    t0 = time.time()
    if not args.skip_train:
        argv_train = [args.model, "--data", str(tokens), "--preset", "tiny", "--out", str(run),
                      "--data.valid_utterances=0", f"--max_minutes={args.minutes}"]
        if args.steps:
            argv_train += ["--steps", str(args.steps)]
        if (run / "state").is_dir():
            argv_train.append("--resume")
        assert train_main(argv_train) == 0
    train_seconds = time.time() - t0

    from tts.data import TTSCorpus
    from tts.generation import GenerationConfig
    from tts.synthesis import Synthesizer

    synth = Synthesizer.from_pretrained(run / "final")
    corpus = TTSCorpus.load([tokens], valid_utterances=0)
    n_prompt = round(args.prompt_seconds * corpus.frame_rate)
    utts = [u for u in corpus.train if u.num_frames > n_prompt]
    gen = GenerationConfig(do_sample=False, max_seconds_per_phoneme=0.25)
    t0 = time.time()
    codes = synth.model.generate([u.phonemes.long() for u in utts], [u.codes[:, :n_prompt].long() for u in utts],
                                 [len(u.phonemes) for u in utts], gen)
    synth_seconds = time.time() - t0
    rows = []
    for u, c in zip(utts, codes):
        truth = u.codes[:, n_prompt:].long()
        n = min(truth.shape[-1], c.shape[-1])
        # per level: generated tokens equal to the training tokens at the same frame, over the true frames
        per_level = [int((c[q, :n] == truth[q, :n]).sum()) / truth.shape[-1] for q in range(truth.shape[0])]
        full = torch.cat([u.codes[:, :n_prompt].long(), c], dim=-1)
        rows.append({"id": u.id, "text": u.text, "true_frames": truth.shape[-1], "generated_frames": int(c.shape[-1]),
                     "token_match": per_level[0], "token_match_per_level": per_level,
                     "audio": synth.codec.batch_decode(full[None])[0],
                     "resynthesis": synth.codec.batch_decode(u.codes.long()[None])[0]})
    result = {"utterances": len(rows), "train_seconds": train_seconds, "synthesis_seconds": synth_seconds,
              "token_match": float(np.mean([r["token_match"] for r in rows])),
              "token_match_per_level": np.mean([r["token_match_per_level"] for r in rows], axis=0).round(4).tolist(),
              "length_ratio": float(np.mean([r["generated_frames"] / r["true_frames"] for r in rows]))}
    out = work / "generated"
    out.mkdir(parents=True, exist_ok=True)
    import soundfile as sf

    for r in rows:
        sf.write(out / f"{r['id']}.wav", r["audio"], synth.sampling_rate)
    if not args.no_asr:
        from evaluation.asr import get_asr, wer

        asr = get_asr("whisper")
        texts = [r["text"] for r in rows]
        hyp_gen = [asr.transcribe(r["audio"], synth.sampling_rate) for r in rows]
        hyp_res = [asr.transcribe(r["resynthesis"], synth.sampling_rate) for r in rows]
        result.update({"asr": asr.name, "wer_synthesized": 100 * wer(texts, hyp_gen),
                       "wer_codec_resynthesis": 100 * wer(texts, hyp_res)})
        for r, h in zip(rows, hyp_gen):
            r["hypothesis"] = h
    (work / "per_utterance.jsonl").write_text("".join(
        json.dumps({k: v for k, v in r.items() if k not in ("audio", "resynthesis")}) + "\n" for r in rows))
    (work / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
