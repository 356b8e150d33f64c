"""Held-out quality against training time: every export of one or more `train-codec` runs, scored at one
operating point on the same clips, for recipe searches and long runs (issue 30).

    python benchmarks/codec_curve.py RUN_DIR [RUN_DIR ...] --data DIR [--per-speaker 3] [--num-quantizers 4] \
        [--reference language-codec] [--out docs/reports/language_codec_v3]

For each run: the exports `<run>/export/step-N` and `<run>/final` (its step read from `<run>/log.jsonl`),
the training seconds up to that step summed from the log's `time/seconds_per_step` (evaluation and export time
excluded; `hours`) and the step times the run's uncontended speed (the 0.2 quantile of its logged
`time/seconds_per_step` windows; `hours_uncontended`, the x axis and the slopes: a run that shared its core
for a while is not charged for it), and per export the mean PESQ-WB, STOI and mel distance of the K-quantizer round trip of the clips
(`evaluation.evaluate_codec.evaluate_pair`, the numbers `evaluate-codec` reports). `--data`: a folder of
`<speaker>-<chapter>-<utt>.flac` clips; the first `--per-speaker` of each speaker in sorted order are used.
Scores are cached in `<out>/curve_cache.json` by export path and weights file time, so a re-run scores only new
exports. Writes `<out>/curves.json` and `<out>/curves.png` (STOI and mel distance against training hours, one
line per run, `--reference` as a horizontal line) and prints a table with each run's slope over its last half.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from evaluation.evaluate_codec import evaluate_pair
from evaluation.systems import TokenizerCodec
from tokenizer import AutoCodecTokenizer
from tokenizer.audio import load_mono
from tokenizer.utils.cli import run_cli
from tokenizer.utils.errors import CodecError

METRICS = ("pesq_wb", "stoi", "mel_distance")
AUDIO = (".flac", ".wav")


def heldout_clips(folder: Path, per_speaker: int) -> list[Path]:
    """The first `per_speaker` clips of each speaker (file-name prefix before the first '-'), sorted."""
    by_speaker = defaultdict(list)
    for path in sorted(p for p in folder.iterdir() if p.suffix in AUDIO):
        by_speaker[path.name.split("-")[0]].append(path)
    return [p for spk in sorted(by_speaker) for p in by_speaker[spk][:per_speaker]]


def training_seconds(log: Path) -> tuple[dict[int, float], int]:
    """Cumulative training seconds at each logged step (from `time/seconds_per_step` x steps since the previous
    logged row; a resumed run's first row counts from its resume step) and the last step logged."""
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "time/seconds_per_step" in r]
    seconds, total, prev = {}, 0.0, 0
    for r in rows:
        step = int(r["step"])
        if step <= prev:  # a resume that repeated steps after its last saved state: count from there
            prev = max(s for s in seconds if s <= step) if any(s <= step for s in seconds) else 0
            total = seconds.get(prev, 0.0)
        total += r["time/seconds_per_step"] * (step - prev)
        seconds[step], prev = total, step
    return seconds, prev


def typical_seconds_per_step(log: Path, quantile: float = 0.2) -> float | None:
    """A run's uncontended training speed: the `quantile` of its logged `time/seconds_per_step` windows.
    Wall time of a run that shared its core for a while overstates its cost; steps x this speed does not."""
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    values = [r["time/seconds_per_step"] for r in rows if "time/seconds_per_step" in r]
    return float(np.quantile(values, quantile)) if values else None


def seconds_at(table: dict[int, float], step: int) -> float:
    """Training seconds at `step`, interpolated between logged steps."""
    steps = sorted(table)
    return float(np.interp(step, [0, *steps], [0.0, *(table[s] for s in steps)]))


def exports(run: Path, last_step: int) -> list[tuple[int, Path]]:
    found = [(int(m.group(1)), p) for p in (run / "export").glob("step-*")
             if (m := re.fullmatch(r"step-(\d+)", p.name)) and (p / "config.json").exists()]
    if (run / "final" / "config.json").exists() and last_step not in {s for s, _ in found}:
        found.append((last_step, run / "final"))
    return sorted(found)


def score(model: str, clips: list[Path], num_quantizers: int) -> dict[str, float]:
    system = TokenizerCodec(AutoCodecTokenizer.from_pretrained(model), num_quantizers=num_quantizers)
    rows = []
    for clip in clips:
        audio, sr = load_mono(str(clip), name=clip.name)
        row, _, _ = evaluate_pair(system, audio, sr, 16000, METRICS, "none")
        rows.append({k: row[k] for k in METRICS})
    return {k: float(np.nanmean([r[k] for r in rows])) for k in METRICS} | {
        f"{k}_per_clip": [r[k] for r in rows] for k in METRICS}


def slope(points: list[dict], key: str) -> float | None:
    """Least-squares change of `key` per training hour over the last half of the points (None below 2)."""
    half = points[len(points) // 2:] if len(points) >= 4 else points
    if len(half) < 2:
        return None
    hours = np.array([p["hours_uncontended"] for p in half])
    values = np.array([p[key] for p in half])
    return float(np.polyfit(hours, values, 1)[0]) if np.ptp(hours) > 0 else None


def plot(curves: dict, reference: dict | None, path: Path, k: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, key, label in zip(axes, METRICS, ("PESQ-WB (higher better)", "STOI (higher better)",
                                               "mel distance (lower better)")):
        for name, points in curves.items():
            ax.plot([p["hours_uncontended"] for p in points], [p[key] for p in points], marker="o", ms=3, label=name)
        if reference:
            ax.axhline(reference[key], color="k", ls="--", lw=1, label=f"reference {reference['name']}")
        ax.set_xlabel("training hours on one CPU core (steps x uncontended s/step)")
        ax.set_title(f"{label}, K = {k}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    return run_cli("codec_curve", _main, argv)


def _main(argv: list[str] | None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="train-codec output folders")
    p.add_argument("--data", required=True, help="folder of held-out clips <speaker>-<chapter>-<utt>.flac")
    p.add_argument("--per-speaker", type=int, default=3)
    p.add_argument("--num-quantizers", type=int, default=4)
    p.add_argument("--reference", default="language-codec", help="codec scored once as a horizontal line ('' = none)")
    p.add_argument("--out", default="docs/reports/language_codec_v3")
    p.add_argument("--seconds-per-step", nargs="*", default=[], metavar="RUN=SECONDS",
                   help="a run's uncontended s/step when its own log cannot tell (it shared its core for most of "
                        "its time), e.g. a run of the same compute per step measured alone")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not Path(args.data).is_dir():
        raise CodecError(f"--data {args.data}: not a folder of held-out clips")
    clips = heldout_clips(Path(args.data), args.per_speaker)
    if not clips:
        raise CodecError(f"--data {args.data}: no .flac or .wav clips")
    cache_path = out / "curve_cache.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}

    def cached(model: str, weights: Path | None) -> dict:
        key = f"{model}|k={args.num_quantizers}|n={len(clips)}|{weights.stat().st_mtime_ns if weights else ''}"
        if key not in cache:
            cache[key] = score(model, clips, args.num_quantizers)
            cache_path.write_text(json.dumps(cache))
        return cache[key]

    reference = None
    if args.reference:
        reference = {"name": args.reference, **cached(args.reference, None)}
    curves = {}
    todo = []
    for run in map(Path, args.runs):
        if not (run / "log.jsonl").exists():
            continue
        table, last = training_seconds(run / "log.jsonl")
        todo += [(run, step, path, table) for step, path in exports(run, last)]
    given = dict(kv.split("=", 1) for kv in args.seconds_per_step)
    speed = {run: float(given[run.name]) if run.name in given else typical_seconds_per_step(run / "log.jsonl")
             for run, *_ in todo}
    for run, step, path, table in tqdm(todo, desc="exports", unit="export"):
        s = cached(str(path), path / "model.safetensors")
        curves.setdefault(run.name, []).append({"step": step, "hours": seconds_at(table, step) / 3600,
                                                "hours_uncontended": step * speed[run] / 3600,
                                                **{k: s[k] for k in METRICS}})
    summary = {"clips": [c.name for c in clips], "num_quantizers": args.num_quantizers, "reference": reference,
               "runs": {name: {"points": pts, "seconds_per_step": pts[-1]["hours_uncontended"] * 3600 / pts[-1]["step"],
                               "slope_per_hour": {k: slope(pts, k) for k in METRICS}}
                        for name, pts in curves.items()}}
    (out / "curves.json").write_text(json.dumps(summary, indent=1))
    plot(curves, reference, out / "curves.png", args.num_quantizers)
    print(f"{len(clips)} clips, K = {args.num_quantizers}"
          + (f"; reference {args.reference}: " + " ".join(f"{k} {reference[k]:.3f}" for k in METRICS) if reference else ""))
    print(f"{'run':<22} {'steps':>6} {'hours':>6} {'s/step':>6} " + " ".join(f"{k:>12}" for k in METRICS)
          + "  slope/h (last half): " + " ".join(METRICS))
    for name, r in summary["runs"].items():
        last = r["points"][-1]
        sl = " ".join("n/a" if v is None else f"{v:+.3f}" for v in r["slope_per_hour"].values())
        print(f"{name:<22} {last['step']:>6} {last['hours_uncontended']:>6.2f} {r['seconds_per_step']:>6.2f} "
              + " ".join(f"{last[k]:>12.3f}" for k in METRICS) + f"  {sl}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
