"""MobileSpeech's decoding budget: WER and token accuracy against the mask-decoding iterations per level, on a
trained model, next to the real-time factor each budget gives (issue 28, deliverable 2).

    python benchmarks/mobilespeech_step_budget.py --model runs/e2e_ms/run/final --data runs/e2e_tokens \
        [--budgets 16,1 8,1 4,1 2,1 1,1] [--out docs/reports/mobilespeech_step_budget]

Every utterance of `--data` (token shards with phonemes), continuation mode as in `tts_end_to_end.py`: its
first `--prompt-seconds` as the prompt, the whole transcript. For each budget (iterations for level 1, then
for each higher level, the last value repeated), greedy decoding with the model's predicted durations and
with oracle durations (the aligner's path of the true utterance: frames line up, so token accuracy is exact
and the duration predictor's noise is out of the comparison):
- `rtf`: generation seconds / generated audio seconds of the model on this machine (the codec decoder, the
  same for every budget, left out), one thread;
- Whisper WER of the decoded audio against the transcript, and the codec resynthesis's WER on the same items;
- token accuracy per level against the true continuation (oracle durations: same frame; predicted: DTW on
  codec latents, `evaluation.token_alignment`).
Writes `result.json`, `per_utterance.jsonl`, `speed_vs_wer.png` (WER against decoder passes, which set the
time: the RTF of a shared machine is noisy) and prints a table. The RTF of a trained
`tiny` model says little about a `small` one: `tts_speed_mobilespeech.py --steps ...` gives that side.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tts_end_to_end import continuation_inputs, mean_levels, same_frame


def budgets_of(values: list[str]) -> list[list[int]]:
    return [[int(v) for v in b.split(",")] for b in values]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a trained MobileSpeech export")
    p.add_argument("--data", required=True, help="token shards the model can read (with phonemes)")
    p.add_argument("--budgets", nargs="+", default=["16,1", "8,1", "4,1", "2,1", "1,1", "8,2"])
    p.add_argument("--prompt-seconds", type=float, default=1.5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-asr", action="store_true")
    p.add_argument("--out", default="docs/reports/mobilespeech_step_budget")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from evaluation.token_alignment import aligned_token_accuracy
    from tts.data import TTSCorpus
    from tts.mobilespeech.decoding import MaskDecodingConfig
    from tts.synthesis import Synthesizer

    synth = Synthesizer.from_pretrained(args.model)
    model, codec = synth.model.eval(), synth.codec
    if model.config.model_type != "mobilespeech":
        raise SystemExit(f"--model {args.model} is a {model.config.model_type} model, not MobileSpeech")
    corpus = TTSCorpus.load([args.data], valid_utterances=0)
    n_prompt = round(args.prompt_seconds * corpus.frame_rate)
    utts = sorted((u for u in corpus.train if u.num_frames > n_prompt), key=lambda u: u.id)
    table = codec.code_vectors(model.config.num_quantizers)
    phonemes, prompts, truths, rows = continuation_inputs(utts, n_prompt)
    n_target = [len(ph) for ph in phonemes]
    oracle_index = [model.frame_phonemes(ph, u.codes.long())[n_prompt:] for ph, u in zip(phonemes, utts)]
    sr = codec.sampling_rate

    asr = texts = None
    result = {"model": args.model, "data": args.data, "utterances": len(utts), "prompt_seconds": args.prompt_seconds,
              "threads": args.threads, "default_steps_per_level": model.config.steps_per_level, "budgets": []}
    if not args.no_asr:
        from evaluation.asr import get_asr, wer

        asr, texts = get_asr("whisper"), [r["text"] for r in rows]
        resynthesis = [codec.batch_decode(u.codes.long()[None])[0] for u in utts]
        result["asr"] = asr.name
        result["wer_codec_resynthesis"] = 100 * wer(texts, [asr.transcribe(a, sr) for a in resynthesis])

    for budget in budgets_of(args.budgets):
        steps = model.config.level_steps(budget)
        entry = {"steps_per_level": budget, "passes": int(sum(steps))}
        for durations in ("predicted", "oracle"):
            cfg = MaskDecodingConfig(steps_per_level=budget)
            t0 = time.perf_counter()
            codes = []
            for i in range(len(utts)):  # batch 1: the latency a user waits for
                extra = {"frame_phonemes": [oracle_index[i]]} if durations == "oracle" else {}
                codes.append(model.generate([phonemes[i]], [prompts[i]], [n_target[i]], cfg, **extra)[0])
            seconds = time.perf_counter() - t0
            frames = sum(int(c.shape[-1]) for c in codes)
            key = f"{durations} {','.join(map(str, budget))}"
            for r, c, t in zip(rows, codes, truths):
                r[f"tokens, {key}"] = (same_frame(c, t) if durations == "oracle"
                                       else aligned_token_accuracy(c, t, table)["per_level"])
            entry[durations] = {"rtf": seconds / (frames / corpus.frame_rate),
                                "token_accuracy": mean_levels(rows, f"tokens, {key}")}
            if asr is not None:
                wavs = [codec.batch_decode(torch.cat([pr, c], -1)[None])[0] for pr, c in zip(prompts, codes)]
                hyps = [asr.transcribe(a, sr) for a in wavs]
                entry[durations]["wer"] = 100 * wer(texts, hyps)
                for r, h in zip(rows, hyps):
                    r[f"hypothesis, {key}"] = h
        result["budgets"].append(entry)
        print(json.dumps(entry))

    (out / "result.json").write_text(json.dumps(result, indent=1))
    (out / "per_utterance.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if asr is not None:
        plot(result, out / "speed_vs_wer.png")
    print_table(result)
    return result


def print_table(result: dict) -> None:
    print(f"{'budget':>8} {'passes':>6} " + " ".join(f"{d + ' ' + c:>16}" for d in ("predicted", "oracle")
                                                   for c in ("RTF", "WER", "acc q1", "acc q8")))
    for e in result["budgets"]:
        cells = []
        for d in ("predicted", "oracle"):
            acc = e[d]["token_accuracy"]
            cells += [f"{e[d]['rtf']:.3f}", f"{e[d].get('wer', float('nan')):.1f}", f"{acc[0]:.3f}", f"{acc[-1]:.3f}"]
        print(f"{','.join(map(str, e['steps_per_level'])):>8} {e['passes']:>6} " + " ".join(f"{c:>16}" for c in cells))


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for durations, marker in (("predicted", "o"), ("oracle", "s")):
        xs = [e["passes"] + (0.15 if durations == "oracle" else 0) for e in result["budgets"]]
        ys = [e[durations]["wer"] for e in result["budgets"]]
        ax.plot(xs, ys, marker=marker, ls="", label=f"{durations} durations")
        for e, x, y in zip(result["budgets"], xs, ys):
            ax.annotate(",".join(map(str, e["steps_per_level"])), (x, y), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.axhline(result["wer_codec_resynthesis"], color="k", ls="--", lw=1, label="codec resynthesis")
    ax.set_xlabel("decoder passes per sentence (K levels; generation time is proportional)")
    ax.set_ylabel("Whisper WER (%)")
    ax.set_title("MobileSpeech: iterations per level (level 1, higher levels)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
