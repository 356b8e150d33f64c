"""End to end, text -> tokens -> audio: train the `tiny` VALL-E (or MobileSpeech, `--model`) on a small corpus
on CPU, then make it say its own training sentences again and measure what it learned.

    python benchmarks/tts_end_to_end.py --work runs/e2e [--model valle] [--minutes 15] [--data TOKENS_DIR]
        [--steps N] [--skip-train] [--no-asr]

1. `tokenize-corpus libritts --codec language-codec` of the built-in sample corpus (20 utterances), unless
   `--data` names token shards of another corpus (made by `tokenize-corpus`, with phonemes).
2. `train-tts MODEL --preset tiny` with the preset's defaults, except that every utterance is trained on
   (`--data.valid_utterances=0`: the question is whether the model reproduces its training data) and a
   wall-clock cap of `--minutes` (15 minutes on 2 CPU cores in the issue).
3. Every utterance, continuation mode: its first `--prompt-seconds` as the prompt, the whole transcript.

Scored (result.json, per_utterance.jsonl, training_curves.png; MobileSpeech also alignments.png):
- Teacher-forced token accuracy per level: VALL-E, the AR's top-1 of codebook 1 and the NAR's top-1 of
  codebook q given the true codebooks < q; MobileSpeech, the mask decoder's accuracy on masked tokens of
  level q given the true levels < q (fixed masks, cosine ratio), with the aligner's durations.
- Free-running token accuracy per level, generated tokens against the training tokens:
  - VALL-E: the NAR cascade from the true codebook 1 (the NAR alone), and the whole model (AR, then the
    NAR from the generated codebook 1) with `synthesize`'s default greedy decoding and with `--sample`
    (three seeds). Same frame (the AR writes frame after frame; an AR that drifts by one frame scores near
    chance after the drift, strict) and along a DTW path on codec latents.
  - MobileSpeech: with oracle length regulation (the aligner's path of the true utterance, so frames line
    up and same-frame comparison is valid), and with its predicted durations, scored along a DTW path on
    codec latents (`evaluation.token_alignment`; frames of a duration model do not line up).
- Whisper WER of each synthesis against the WER of the codec resynthesis of the same audio (goal: within
  5 points with `synthesize`'s default decoding).
- Speaker similarity (Resemblyzer) of the generated part only (the prompt's own resynthesis removed)
  to the prompt, beside the same score of the codec resynthesis of the true continuation.
Goals (issue 24): free-running >= 90% on every level (MobileSpeech: with oracle durations) and WER within
5 points of the codec resynthesis.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from data_prep.sample_corpus import SAMPLE_ROOT


def same_frame(generated: torch.Tensor, truth: torch.Tensor) -> list[float]:
    """Per level, the share of the true frames (K, F) whose token the generated codes (K, F') have at the same
    frame (frames past F' count as wrong)."""
    n = min(truth.shape[-1], generated.shape[-1])
    return [int((generated[q, :n] == truth[q, :n]).sum()) / max(truth.shape[-1], 1) for q in range(truth.shape[0])]


def mean_levels(rows: list[dict], key: str) -> list[float]:
    return np.mean([r[key] for r in rows], axis=0).round(4).tolist()


def batches_of(utts, n_prompt: int, size: int = 4):
    """Teacher-forcing batches: (id, phonemes, first n_prompt frames as prompt, the rest as target)."""
    from tts.data import collate

    for i in range(0, len(utts), size):
        yield collate([(u.id, u.phonemes.long(), u.codes[:, :n_prompt].long(), u.codes[:, n_prompt:].long())
                       for u in utts[i : i + size]])


@torch.no_grad()
def teacher_forced(model, utts, n_prompt: int) -> list[float]:
    """Per level (1..K): VALL-E AR / NAR top-1, MobileSpeech masked accuracy, weighted by items."""
    K, sums, total = model.config.num_quantizers, None, 0
    model.eval()
    for batch in batches_of(utts, n_prompt):
        if model.config.model_type == "valle":
            accs = [model.ar.loss(batch)[1]["ar/top1"]]
            accs += [model.nar.loss(batch, [q] * len(batch))[1][f"nar/top1_q{q + 1}"] for q in range(1, K)]
        else:
            out = model(batch)  # eval mode: every level with fixed masks
            accs = [out.metrics[f"smd/acc_q{q + 1}"] for q in range(K)]
        acc = np.asarray(accs) * len(batch)
        sums, total = (acc if sums is None else sums + acc), total + len(batch)
    return (sums / total).round(4).tolist()


SAMPLING_SEEDS = (0, 1, 2)


def continuation_inputs(utts, n_prompt: int) -> tuple[list, list, list, list[dict]]:
    """(phonemes (P,), prompt codes (K, n_prompt), true continuation (K, F), a result row) per utterance."""
    phonemes = [u.phonemes.long() for u in utts]
    prompts = [u.codes[:, :n_prompt].long() for u in utts]
    truths = [u.codes[:, n_prompt:].long() for u in utts]
    rows = [{"id": u.id, "text": u.text, "true_frames": t.shape[-1]} for u, t in zip(utts, truths)]
    return phonemes, prompts, truths, rows


def score_valle(model, utts, n_prompt: int, table) -> tuple[dict, list[dict], dict]:
    from evaluation.token_alignment import aligned_token_accuracy
    from tts.generation import GenerationConfig

    phonemes, prompts, truths, rows = continuation_inputs(utts, n_prompt)
    decodings = {"greedy (synthesize default)": GenerationConfig()}
    decodings.update({f"sampled seed {s} (--sample)": GenerationConfig(do_sample=True, seed=s) for s in SAMPLING_SEEDS})
    t0 = time.time()
    nar_true = model.nar.generate(phonemes, prompts, [t[0] for t in truths])
    codes, summary = {}, {"free_running": {}, "length_ratio": {}}
    for r, c, t in zip(rows, nar_true, truths):
        r["nar_from_true_c1"] = same_frame(c, t)
    summary["free_running"]["nar_from_true_c1 (same frame)"] = mean_levels(rows, "nar_from_true_c1")
    for name, cfg in decodings.items():
        codes[name] = model.generate(phonemes, prompts, [len(p) for p in phonemes], cfg)
        for r, c, t in zip(rows, codes[name], truths):
            r[f"frames, {name}"] = int(c.shape[-1])
            r[f"same frame, {name}"] = same_frame(c, t)
            r[f"dtw, {name}"] = aligned_token_accuracy(c, t, table)["per_level"]
        summary["free_running"][f"{name} (same frame)"] = mean_levels(rows, f"same frame, {name}")
        summary["free_running"][f"{name} (dtw)"] = mean_levels(rows, f"dtw, {name}")
        summary["length_ratio"][name] = float(np.mean([r[f"frames, {name}"] / r["true_frames"] for r in rows]))
    summary["generation_seconds"] = time.time() - t0
    return summary, rows, codes


def score_mobilespeech(model, utts, n_prompt: int, table) -> tuple[dict, list[dict], dict]:
    from evaluation.token_alignment import aligned_token_accuracy
    from tts.mobilespeech.decoding import MaskDecodingConfig

    phonemes, prompts, truths, rows = continuation_inputs(utts, n_prompt)
    n_target = [len(p) for p in phonemes]
    t0 = time.time()
    oracle_index = [model.frame_phonemes(p, u.codes.long())[n_prompt:] for p, u in zip(phonemes, utts)]
    codes = {"oracle durations, greedy": model.generate(phonemes, prompts, n_target, MaskDecodingConfig(),
                                                        frame_phonemes=oracle_index),
             "predicted durations, greedy (synthesize default)": model.generate(phonemes, prompts, n_target,
                                                                                MaskDecodingConfig())}
    codes.update({f"predicted durations, sampled seed {s} (--sample)": model.generate(
        phonemes, prompts, n_target, MaskDecodingConfig(do_sample=True, seed=s)) for s in SAMPLING_SEEDS})
    summary = {"free_running": {}, "length_ratio": {}}
    for name, out in codes.items():
        oracle = name.startswith("oracle")
        for r, c, t in zip(rows, out, truths):
            r[f"frames, {name}"] = int(c.shape[-1])
            # oracle length regulation: frames line up, same frame is valid; predicted durations: DTW
            r[f"tokens, {name}"] = same_frame(c, t) if oracle else aligned_token_accuracy(c, t, table)["per_level"]
        summary["free_running"][f"{name} ({'same frame' if oracle else 'dtw'})"] = mean_levels(rows, f"tokens, {name}")
        summary["length_ratio"][name] = float(np.mean([r[f"frames, {name}"] / r["true_frames"] for r in rows]))
    summary["generation_seconds"] = time.time() - t0
    return summary, rows, codes


def plot_curves(log_path: Path, out: Path, model_type: str) -> None:
    """Training top-1 / accuracy per level against steps, from the run's log.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if not any(k.startswith("valid/") for k in r)]
    prefix = ("ar/top1", "nar/top1_q") if model_type == "valle" else ("smd/acc_q",)
    keys = sorted({k for r in rows for k in r if k.startswith(prefix)}, key=lambda k: (len(k), k))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for k in keys:
        pts = [(r["step"], r[k]) for r in rows if k in r]
        axes[0].plot(*zip(*pts), label=k, lw=1)
    axes[0].set(xlabel="step", ylabel="teacher-forced top-1 (training batches)", ylim=(0, 1.02))
    axes[0].legend(fontsize=7, ncol=2)
    pts = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    axes[1].plot(*zip(*pts))
    axes[1].set(xlabel="step", ylabel="training loss", yscale="log")
    if model_type == "valle":
        stop = next((r["step"] for r in rows if r.get("ar/stopped")), None)
        for ax in axes:
            if stop:
                ax.axvline(stop, color="grey", ls=":", lw=1)
        if stop:
            axes[0].annotate("AR loss dropped (ar_stop_top1)", (stop, 0.05), fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="valle", help="valle | mobilespeech (the tiny preset of either)")
    p.add_argument("--work", default="runs/tts-e2e")
    p.add_argument("--data", default=None, help="token shards of another corpus (default: the sample corpus)")
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--steps", type=int, default=None, help="default: the tiny preset's")
    p.add_argument("--prompt-seconds", type=float, default=1.5)
    p.add_argument("--skip-train", action="store_true", help="score the existing <work>/run/final")
    p.add_argument("--no-asr", action="store_true", help="skip Whisper WER and speaker similarity")
    args = p.parse_args(argv)
    work = Path(args.work)
    tokens, run = Path(args.data) if args.data else work / "tokens", work / "run"

    from data_prep.tokenize_corpus import main as tokenize_corpus
    from tts.cli import train_main

    if not (tokens / "manifest.json").is_file():
        if args.data:
            raise SystemExit(f"--data {tokens}: no manifest.json (make it with tokenize-corpus)")
        assert tokenize_corpus(["libritts", "--codec", "language-codec", "--root", str(SAMPLE_ROOT),
                                "--out", str(tokens), "--num-workers", "0"]) == 0
    t0, train_seconds = time.time(), None  # None: not trained by this run
    if not args.skip_train:
        argv_train = [args.model, "--data", str(tokens), "--preset", "tiny", "--out", str(run),
                      "--data.valid_utterances=0", f"--max_minutes={args.minutes}", "--log_with=none"]
        if args.steps:
            argv_train += ["--steps", str(args.steps)]
        if (run / "state").is_dir():
            argv_train.append("--resume")
        assert train_main(argv_train) == 0
        train_seconds = time.time() - t0

    from tts.data import TTSCorpus
    from tts.synthesis import Synthesizer

    synth = Synthesizer.from_pretrained(run / "final")
    model, codec = synth.model.eval(), synth.codec
    corpus = TTSCorpus.load([tokens], valid_utterances=0)
    n_prompt = round(args.prompt_seconds * corpus.frame_rate)
    utts = sorted((u for u in corpus.train if u.num_frames > n_prompt), key=lambda u: u.id)
    table = codec.code_vectors(model.config.num_quantizers)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    result = {"model": args.model, "corpus": str(args.data or SAMPLE_ROOT), "utterances": len(utts),
              "prompt_seconds": args.prompt_seconds, "train_seconds": train_seconds,
              "train_steps": max(r["step"] for r in log), "config": model.config.to_diff_dict(),
              "teacher_forced": teacher_forced(model, utts, n_prompt)}
    score = score_valle if args.model == "valle" else score_mobilespeech
    summary, rows, outputs = score(model, utts, n_prompt, table)
    result.update(summary)
    if args.model == "valle":
        result["ar_stopped_at_update"] = int(model.ar_stopped_at)

    out = work / "generated"
    out.mkdir(parents=True, exist_ok=True)
    import soundfile as sf

    audio = {}
    for name, codes in outputs.items():
        tag = "_".join(name.split(" (")[0].replace(",", "").split())
        audio[name] = [codec.batch_decode(torch.cat([u.codes[:, :n_prompt].long(), c], -1)[None])[0]
                       for u, c in zip(utts, codes)]
        for u, a in zip(utts, audio[name]):
            sf.write(out / f"{u.id}.{tag}.wav", a, codec.sampling_rate)
    resynthesis = [codec.batch_decode(u.codes.long()[None])[0] for u in utts]
    if not args.no_asr:
        from evaluation.asr import get_asr, wer
        from evaluation.speaker import get_speaker_encoder

        asr, spk = get_asr("whisper"), get_speaker_encoder("resemblyzer")
        texts = [r["text"] for r in rows]
        sr = codec.sampling_rate
        cut = round(n_prompt / corpus.frame_rate * sr)  # the prompt's resynthesis inside each output
        prompt_audio = [a[:cut] for a in resynthesis]
        result["asr"], result["speaker_encoder"] = asr.name, spk.name
        result["wer"] = {"codec_resynthesis": 100 * wer(texts, [asr.transcribe(a, sr) for a in resynthesis])}
        result["speaker_similarity_generated_part"] = {
            "codec_resynthesis": float(np.mean([spk.similarity(a[cut:], pa, sr) for a, pa in zip(resynthesis,
                                                                                               prompt_audio)]))}
        for name, wavs in audio.items():
            hyps = [asr.transcribe(a, sr) for a in wavs]
            result["wer"][name] = 100 * wer(texts, hyps)
            result["speaker_similarity_generated_part"][name] = float(np.mean(
                [spk.similarity(a[cut:], pa, sr) for a, pa in zip(wavs, prompt_audio) if len(a) > cut]))
            for r, h in zip(rows, hyps):
                r[f"hypothesis, {name}"] = h
        sampled = [v for k, v in result["wer"].items() if "sampled seed" in k]
        if sampled:
            result["wer"]["sampled, mean over seeds (--sample)"] = float(np.mean(sampled))
    (work / "per_utterance.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plot_curves(run / "log.jsonl", work / "training_curves.png", args.model)
    if args.model == "mobilespeech":
        from tts.mobilespeech.inspection import plot_model_alignments

        plot_model_alignments(model, utts[:4], work / "alignments.png", model.config.phoneme_tokens)
    (work / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=1))
    return result


if __name__ == "__main__":
    main()
