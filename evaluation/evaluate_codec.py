"""`evaluate-codec`: quality, rate and speed of a codec at each operating point, next to classic baselines.

    evaluate-codec --codec language-codec --num-quantizers 3 4 8 --data /data/test-clean-wavs \\
                   --baselines opus:6 codec2:1200 codec2:3200 --out reports/lc
    evaluate-codec --codec my-fsq --levels 5,5,5,5,5,5 17,17,17,17,17,17 --data libritts --out reports/fsq

--data is a folder of audio (or a JSONL/CSV manifest) or a `data_prep` corpus name (`--data-root`,
`--subsets`). Every utterance is coded by every system at the system's own rate; metrics compare the
reconstruction with the original at `--eval-sampling-rate` (16 kHz: PESQ-WB, ViSQOL speech and DNSMOS
are defined there). Codec2's delay is removed by envelope cross-correlation first.

Writes to --out:
- `per_utterance.csv`: one row per (system, utterance) with bits, bitrate, timings and every metric;
  rows already there are not recomputed when the command is run again (resumable);
- `summary.json`: per system, the mean / std / 95% CI of each metric, measured and Huffman bitrates,
  codebook entropy and usage, real-time factors, and Bjontegaard deltas against an anchor family;

Replicates and collapsed models: several `--codec` models with the same operating point (e.g. seeds 0 and
1 of one lambda, or of one RVQ codec) are all evaluated, named `<point>#1`, `#2`... in `--codec` order; the
rate-distortion point of the operating point is the mean rate and mean metric over its replicates, and
the plots and Bjontegaard deltas use those means. A model whose codes ignore the input (under 1% of its
code positions differ from those of silence: `symbols_changed`) has collapsed: it is reported, never
plotted, and left out of the means and the deltas.
- `results.md`: the same as tables; `rd_<metric>.png`: a rate-distortion plot per metric;
- `spectrograms/<utt>.png` and `audio/<system>/<utt>.wav` for the first `--num-examples` utterances;
- `codes/<system>/<utt>.npy`: the codes (for the corpus histograms; kept for resuming).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from data_prep.corpora import CORPORA, get_corpus
from tokenizer.audio import load_mono, resample
from tokenizer.auto import AutoCodecTokenizer
from tokenizer.utils.cli import run_cli
from tokenizer.utils.errors import CodecError
from .baselines import align_to_reference, fit_length, parse_baseline
from .collapse import is_collapsed
from .metrics import DEFAULT_CODEC_METRICS, HIGHER_IS_BETTER, METRICS, UTMOSPredictor, compute_metrics, metric_columns
from .rate import bd_metric, bd_overlap, bd_rate, codebook_stats
from .report import (ResultStore, column_header, describe, fmt, fmt_stat, markdown_table, plot_rate_distortion,
                     plot_spectrograms, safe_name, write_json)
from .systems import SpeechCodec, TokenizerCodec, operating_points, point_kinds

logger = logging.getLogger(__name__)

BASE_COLUMNS = ["family", "duration_s", "nominal_bitrate", "bits", "bitrate", "container_bitrate", "encode_s",
                "decode_s", "rtf_encode", "rtf_decode", "delay_ms", "symbols_changed"]


def load_utterances(data: str, root: str | None = None, subsets: str | None = None,
                    max_utterances: int | None = None) -> list:
    """Utterances of a folder / manifest (when `data` is an existing path) or of a corpus by name.

    A `data` that is neither an existing path nor a corpus name raises `CodecError`: "does not exist"
    when it looks like a path (has a separator or a suffix, or starts with "." or "~"), else "unknown corpus".
    """
    path = Path(data).expanduser()
    if path.exists():
        corpus = get_corpus("folder", root=path)
    elif data.strip().lower().replace("_", "-") in CORPORA:
        corpus = get_corpus(data, root=root, subsets=subsets)
    elif "/" in data or "\\" in data or path.suffix or data.startswith((".", "~")):
        raise CodecError(f"--data {data}: no such file or directory")
    else:
        raise CodecError(f"--data {data!r} is neither an existing path nor a corpus name ({', '.join(CORPORA)})")
    utts = list(itertools.islice(corpus, max_utterances))
    if not utts:
        raise CodecError(f"no utterances in {data!r}")
    return utts


def _parse_levels(value: str) -> dict:
    """FSQ operating point: "6" (6 levels, 1 stage), "5x2" (5 levels, 2 residual stages) or a preset
    name such as "2x15625_700bps" -> keyword arguments of `tok.set_quantization`."""
    value = value.strip()
    if value.endswith("bps"):
        return {"preset": value}
    levels, _, stages = value.partition("x")
    try:
        return {"levels": int(levels), "stages": int(stages) if stages else 1}
    except ValueError:
        raise argparse.ArgumentTypeError(f"levels must look like 6, 5x2 or 2x15625_700bps, got {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evaluate-codec", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codec", nargs="+", default=None, help="codec names, save_pretrained directories or hub ids "
                   "(several: e.g. one entropy-codec model per lambda); omit to evaluate baselines only")
    points = p.add_argument_group("operating points of the codec (default: its default)")
    points.add_argument("--num-quantizers", type=int, nargs="+", default=None, help="RVQ codes per frame")
    points.add_argument("--levels", type=_parse_levels, nargs="+", default=None,
                        help="FSQ points: 6 (levels, one stage), 5x2 (levels x stages) or a preset name like "
                             "2x15625_700bps (passed to tok.set_quantization)")
    p.add_argument("--data", required=True, help="folder of audio, JSONL/CSV manifest, or data_prep corpus name")
    p.add_argument("--data-root", default=None, help="root of a named corpus")
    p.add_argument("--subsets", default=None, help="subsets of a named corpus (comma-separated)")
    p.add_argument("--baselines", nargs="*", default=[], help="classic codecs: opus:KBPS, codec2:MODE")
    p.add_argument("--out", type=Path, required=True, help="report directory")
    p.add_argument("--max-utterances", type=int, default=None)
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_CODEC_METRICS),
                   help=f"from: {', '.join(METRICS)} (default: {' '.join(DEFAULT_CODEC_METRICS)})")
    p.add_argument("--eval-sampling-rate", type=int, default=16000, help="rate at which metrics compare (Hz)")
    p.add_argument("--speaker-backend", default="resemblyzer", help="resemblyzer, wavlm or wavlm:PATH_OR_ID")
    p.add_argument("--utmos-weights", default=None, help="local UTMOS weights (.onnx / TorchScript) for 'utmos'")
    p.add_argument("--bd-anchor", default=None, help="family the Bjontegaard deltas are measured against "
                   "(default: the first baseline family with 2+ points)")
    p.add_argument("--num-examples", type=int, default=3, help="utterances with saved audio and spectrograms")
    p.add_argument("--device", default=None, help="torch device of the codec (default cpu)")
    p.add_argument("--random-weights", action="store_true", help="allow built-in codec names that ship no "
                   "weights (untrained default preset: for testing the pipeline, its scores mean nothing)")
    return p


def build_systems(args) -> list[SpeechCodec]:
    systems: list[SpeechCodec] = []
    if args.codec:
        toks = [AutoCodecTokenizer.from_pretrained(name, device=args.device,
                                                   random_weights=getattr(args, "random_weights", False))
                for name in args.codec]
        asked = {k: getattr(args, k) for k in ("num_quantizers", "levels") if getattr(args, k)}
        if len(toks) == 1:  # one codec: every flag applies (a wrong one is an error)
            systems += operating_points(toks[0], **asked)
        else:  # e.g. an RVQ codec against entropy-codec models: each takes the flags of its kind
            kinds = [point_kinds(tok) for tok in toks]
            unused = [k for k in asked if not any(k in kind for kind in kinds)]
            if unused:
                raise CodecError(f"no codec among {', '.join(args.codec)} takes --{unused[0].replace('_', '-')}")
            for tok, kind in zip(toks, kinds):
                systems += operating_points(tok, **{k: v for k, v in asked.items() if k in kind})
        for name, tok in zip(args.codec, toks):
            for system in systems:
                if system.tok is tok:
                    system.source = str(name)
        _number_replicates(systems)
    elif args.num_quantizers or args.levels:
        raise CodecError("--num-quantizers / --levels need --codec")
    systems += [parse_baseline(b) for b in args.baselines]
    if not systems:
        raise CodecError("nothing to evaluate: pass --codec and/or --baselines")
    names = [s.name for s in systems]
    if len(set(names)) != len(names):
        raise CodecError(f"duplicate operating points {names}")
    return systems


def _number_replicates(systems: list[TokenizerCodec]) -> None:
    """Systems of one operating point from different models (seeds) become `<point>#1`, `#2`... A model
    passed twice stays a duplicate (an error)."""
    groups: dict[str, list[TokenizerCodec]] = {}
    for system in systems:
        system.point = system.name
        groups.setdefault(system.name, []).append(system)
    for point, members in groups.items():
        if len(members) > 1 and len({m.source for m in members}) == len(members):
            for i, member in enumerate(members, 1):
                member.name = f"{point}#{i}"


def evaluate_pair(system: SpeechCodec, audio: np.ndarray, sr: int, eval_sr: int, metrics: Sequence[str],
                  speaker_backend: str, utmos=None) -> tuple[dict[str, Any], np.ndarray, np.ndarray | None]:
    """Round-trip one clip through `system` and score it. Returns (row without keys, reconstruction at
    `eval_sr`, codes or None)."""
    x = resample(audio, sr, system.sampling_rate)
    duration = len(x) / system.sampling_rate
    rt = system.roundtrip(x)
    ref = resample(audio, sr, eval_sr)
    deg = fit_length(resample(rt.audio, system.sampling_rate, eval_sr), len(ref))
    delay = 0
    if system.align_delay:
        deg, delay = align_to_reference(ref, deg, eval_sr, envelope=not system.waveform_matching)
    scores = compute_metrics(ref, deg, eval_sr, metrics, waveform_matching=system.waveform_matching,
                             speaker_backend=speaker_backend, utmos=utmos)
    notes = [f"{column} NaN: {reason}" for column, reason in scores.reasons.items()]
    row = {
        "family": system.family, "duration_s": duration, "nominal_bitrate": system.bitrate, "bits": rt.bits,
        "bitrate": rt.bits / duration,
        "container_bitrate": (rt.container_bits / duration) if rt.container_bits else None,
        "encode_s": rt.encode_seconds, "decode_s": rt.decode_seconds, "rtf_encode": rt.encode_seconds / duration,
        "rtf_decode": rt.decode_seconds / duration, "delay_ms": 1000 * delay / eval_sr,
        "symbols_changed": rt.symbols_changed, **scores,
        "spk_backend": speaker_backend if "spk_sim" in metrics else None, "note": "; ".join(notes) or None,
    }
    return row, deg, rt.codes


def summarize_system(system: SpeechCodec, rows: list[dict], columns: Sequence[str], codes_dir: Path,
                     utt_ids: Sequence[str]) -> dict[str, Any]:
    total = sum(r["duration_s"] for r in rows) or math.nan
    out = {**system.info(), "num_utterances": len(rows), "seconds": total,
           "measured_bitrate": sum(r["bits"] for r in rows) / total,
           "container_bitrate": (sum(r["container_bitrate"] * r["duration_s"] for r in rows) / total
                                 if rows and all(r.get("container_bitrate") is not None for r in rows) else None),
           "rtf_encode": sum(r["encode_s"] for r in rows) / total,
           "rtf_decode": sum(r["decode_s"] for r in rows) / total,
           "metrics": {c: describe(r.get(c) for r in rows) for c in columns}}
    changed = [r["symbols_changed"] for r in rows if r.get("symbols_changed") is not None]
    out["symbols_changed"] = float(np.mean(changed)) if changed else None
    out["collapsed"] = is_collapsed(out["symbols_changed"])
    if isinstance(system, TokenizerCodec):
        files = [codes_dir / safe_name(system.name) / f"{safe_name(u)}.npy" for u in utt_ids]
        codes = [np.load(f) for f in files if f.is_file()]
        if codes:
            out["codebooks"] = codebook_stats(codes, system.codebook_sizes, system.frame_rate).to_dict()
    return out


def rd_points(systems: list[dict], columns: Sequence[str]) -> list[dict]:
    """One rate-distortion point per operating point: the mean measured rate and the mean of each metric's
    mean over its replicates (seeds), collapsed systems left out. Keys as in a system summary ("family",
    "measured_bitrate", "metrics": {column: {"mean"}}) plus "name" (the point), "replicates" (names) and,
    per metric, "spread" (max - min over the replicates)."""
    points: dict[str, dict] = {}
    for s in systems:
        if s.get("collapsed"):
            continue
        p = points.setdefault(s.get("point") or s["name"], {"name": s.get("point") or s["name"], "family": s["family"],
                                                           "replicates": []})
        p["replicates"].append(s)
    out = []
    for p in points.values():
        reps = p.pop("replicates")
        metrics = {}
        for c in columns:
            values = [r["metrics"][c]["mean"] for r in reps]
            finite = [v for v in values if v is not None and math.isfinite(v)]
            metrics[c] = {"mean": float(np.mean(finite)) if finite else math.nan,
                          "spread": float(max(finite) - min(finite)) if finite else math.nan}
        rates = [r["measured_bitrate"] for r in reps]
        out.append({**p, "measured_bitrate": float(np.mean(rates)), "rate_spread": float(max(rates) - min(rates)),
                    "metrics": metrics, "replicates": [r["name"] for r in reps]})
    return out


def bjontegaard(systems: list[dict], columns: Sequence[str], anchor: str | None) -> dict[str, Any]:
    """BD-rate (%) and BD-metric of every family against the anchor family, per metric column."""
    families: dict[str, list[dict]] = {}
    for s in systems:
        families.setdefault(s["family"], []).append(s)
    eligible = [f for f, pts in families.items() if len(pts) >= 2]
    baseline_families = [f for f in eligible if f in ("opus", "codec2")]
    anchor = anchor or (baseline_families[0] if baseline_families else (eligible[0] if eligible else None))
    if anchor is None or anchor not in eligible:
        return {"anchor": anchor, "note": "needs 2+ operating points in the anchor and another family", "results": []}
    results = []
    for family in eligible:
        if family == anchor:
            continue
        for c in columns:
            curve = {}
            for name in (anchor, family):
                pts = [(s["measured_bitrate"], s["metrics"][c]["mean"]) for s in families[name]]
                curve[name] = ([p[0] for p in pts], [p[1] for p in pts])
            higher = HIGHER_IS_BETTER.get(c, True)
            values, notes = {}, []
            for key, fn, over in (("bd_rate_percent", bd_rate, "quality"), ("bd_metric", bd_metric, "rate")):
                try:
                    values[key] = fn(*curve[anchor], *curve[family], higher_is_better=higher)
                except CodecError as exc:  # too few points on a front, or ranges that do not overlap
                    values[key] = math.nan
                    notes.append(f"no {over} overlap" if "overlap" in str(exc) else "fewer than 2 points on a front")
            try:
                values["overlap"] = bd_overlap(*curve[anchor], *curve[family], higher_is_better=higher)
            except CodecError:
                values["overlap"] = None
            results.append({"family": family, "metric": c, **values, "note": "; ".join(dict.fromkeys(notes)) or None})
    return {"anchor": anchor, "results": results}


def write_markdown(path: Path, summary: dict, columns: Sequence[str]) -> None:
    lines = ["# Codec evaluation\n",
             f"Codec: `{summary['codec']}`; data: `{summary['data']}` ({summary['num_utterances']} utterances, "
             f"{summary['seconds']:.1f} s); metrics at {summary['eval_sampling_rate']} Hz; speaker similarity: "
             f"{summary['speaker_backend']}.\n", "## Quality (mean ± std over utterances)\n",
             "A metric undefined for some utterances (too short, silent reference: see `note` in "
             "per_utterance.csv) is averaged over the others, and (n=k) gives their count.\n"]
    headers = ["System", "Nominal bps", "Measured bps", "Tokens/s"] + [column_header(c) for c in columns]
    rows = [[s["name"], fmt(s["nominal_bitrate"], 0), fmt(s["measured_bitrate"], 0), fmt(s.get("tokens_per_second"), 0)]
            + [fmt_stat(s["metrics"][c], total=s["num_utterances"]) for c in columns] for s in summary["systems"]]
    lines.append(markdown_table(headers, rows))
    lines.append("\n## Rate and speed\n")
    headers = ["System", "Container bps", "Huffman bps", "Norm. entropy per codebook", "Codebook usage", "RTF encode",
               "RTF decode"]
    rows = []
    for s in summary["systems"]:
        cb = s.get("codebooks")
        rows.append([s["name"], fmt(s.get("container_bitrate"), 0), fmt(cb["huffman_bitrate"], 0) if cb else "n/a",
                     " / ".join(fmt(e, 2) for e in cb["entropy"]) if cb else "n/a",
                     " / ".join(fmt(u, 2) for u in cb["usage"]) if cb else "n/a",
                     fmt(s["rtf_encode"], 4), fmt(s["rtf_decode"], 4)])
    lines.append(markdown_table(headers, rows))
    collapsed = [s for s in summary["systems"] if s.get("collapsed")]
    if collapsed:
        lines.append("\n## Collapsed models (not rate-distortion points: not plotted, not in the deltas)\n")
        lines.append(markdown_table(
            ["System", "Model", "Measured bps", "Codes differing from silence's"] + [column_header(c) for c in columns],
            [[s["name"], s.get("source") or "", fmt(s["measured_bitrate"], 0), f"{100 * s['symbols_changed']:.2f}%"]
             + [fmt_stat(s["metrics"][c], total=s["num_utterances"]) for c in columns] for s in collapsed]))
    replicated = [p for p in summary.get("rd_points", []) if len(p["replicates"]) > 1]
    if replicated:
        lines.append("\n## Rate-distortion points over replicates (seeds)\n")
        lines.append("Mean over the replicates (max - min in brackets); the plots and the deltas use these means.\n")
        lines.append(markdown_table(
            ["Point", "Replicates", "Measured bps"] + [column_header(c) for c in columns],
            [[p["name"], " ".join(p["replicates"]), f"{fmt(p['measured_bitrate'], 0)} ({fmt(p['rate_spread'], 0)})"]
             + [f"{fmt(p['metrics'][c]['mean'], 3)} ({fmt(p['metrics'][c]['spread'], 3)})" for c in columns]
             for p in replicated]))
    sources = [s for s in summary["systems"] if s.get("source")]
    if any("#" in s["name"] for s in sources):
        lines.append("\nModels: " + "; ".join(f"{s['name']} = `{s['source']}`" for s in sources) + "\n")
    bd = summary["bjontegaard"]
    lines.append(f"\n## Bjontegaard deltas against `{bd['anchor']}`\n")
    if bd["results"]:
        def share(r, key):
            return fmt(100 * r["overlap"][key], 0) + "%" if r.get("overlap") else "n/a"

        lines.append(markdown_table(
            ["Family", "Metric", "BD-rate (%)", "over quality", "BD-metric", "over rate", "Note"],
            [[r["family"], column_header(r["metric"]), fmt(r["bd_rate_percent"], 1),
              (f"{fmt(r['overlap']['metric_low'], 3)}..{fmt(r['overlap']['metric_high'], 3)}"
               if r.get("overlap") and r["overlap"]["metric_share"] > 0 else "none"),
              fmt(r["bd_metric"], 3), share(r, "rate_share"), r["note"] or ""] for r in bd["results"]]))
        lines.append("\nBD-rate: mean rate change at equal quality (negative = fewer bits than the anchor) over the "
                     "quality interval both curves reach; BD-metric: mean quality change at equal rate over the "
                     "shared rate interval (its share of the anchor's log-rate range in 'over rate'). Each curve is "
                     "first reduced to its rate-distortion front (points a cheaper point matches or beats are "
                     "dropped); piecewise cubic Hermite interpolation.\n")
    else:
        lines.append(bd.get("note", "none") + "\n")
    lines.append("\nNotes: measured bps = bits spent / audio seconds (Opus: audio packets without Ogg "
                 "framing; Codec2: byte-padded frames; entropy codecs: the range-coded payload); container bps = "
                 "the whole file or stream (Ogg pages, stream header and CRC); Huffman bps = Stable Codec app. A.8 "
                 "(corpus histogram per codebook); RTF = processing seconds / audio seconds on this machine; n/a = not "
                 "applicable (SI-SDR of parametric codecs; the nominal rate of entropy-coded codecs, whose rate is "
                 "that of their real bitstreams) or no score (PESQ found no speech).\n")
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    return run_cli("evaluate-codec", _main, argv)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    metrics = list(dict.fromkeys(args.metrics))
    columns = metric_columns(metrics)
    utmos = UTMOSPredictor(args.utmos_weights) if "utmos" in metrics and args.utmos_weights else None
    if "utmos" in metrics and utmos is None:
        raise CodecError("metric 'utmos' needs --utmos-weights PATH (local weights; see UTMOSPredictor)")
    utts = load_utterances(args.data, args.data_root, args.subsets, args.max_utterances)  # cheap checks first
    systems = build_systems(args)
    out: Path = args.out
    for sub in ("codes", "audio", "spectrograms"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    extra = ["spk_backend", "note"]
    store = ResultStore(out / "per_utterance.csv", BASE_COLUMNS + columns + extra, text_columns=["family", *extra])
    required = BASE_COLUMNS[:3] + columns
    example_ids = {u.id for u in utts[: args.num_examples]}
    skipped: dict[str, str] = {}

    todo = [(u, s) for u in utts for s in systems if not store.done((s.name, u.id), required)]
    bar = tqdm(total=len(utts) * len(systems), initial=len(utts) * len(systems) - len(todo), desc="evaluate-codec",
               unit="pair")
    for utt, group in itertools.groupby(todo, key=lambda t: t[0]):
        try:
            audio, sr = load_mono(utt.audio, name=utt.id)
        except CodecError as exc:
            skipped[utt.id] = str(exc)
            logger.warning("skipping %s: %s", utt.id, exc)
            bar.update(len(list(group)))
            continue
        for _, system in group:
            row, recon, codes = evaluate_pair(system, audio, sr, args.eval_sampling_rate, metrics,
                                              args.speaker_backend, utmos)
            if codes is not None:
                (out / "codes" / safe_name(system.name)).mkdir(exist_ok=True)
                np.save(out / "codes" / safe_name(system.name) / f"{safe_name(utt.id)}.npy", codes)
            if utt.id in example_ids:
                for label, wav in (("reference", resample(audio, sr, args.eval_sampling_rate)), (system.name, recon)):
                    folder = out / "audio" / safe_name(label)
                    folder.mkdir(exist_ok=True)
                    sf.write(folder / f"{safe_name(utt.id)}.wav", wav, args.eval_sampling_rate)
            store.add({"system": system.name, "id": utt.id, **row})
            bar.update(1)
    bar.close()

    utt_ids = [u.id for u in utts if u.id not in skipped]
    summaries = []
    for system in systems:
        rows = [r for r in (store.get((system.name, u)) for u in utt_ids) if r is not None]
        summaries.append(summarize_system(system, rows, columns, out / "codes", utt_ids))
    seconds = sum(r["duration_s"] for r in (store.get((systems[0].name, u)) for u in utt_ids) if r)
    summary = {
        "codec": args.codec, "data": args.data, "num_utterances": len(utt_ids), "seconds": seconds,
        "eval_sampling_rate": args.eval_sampling_rate, "metrics": metrics, "columns": columns,
        "speaker_backend": args.speaker_backend if "spk_sim" in metrics else None,
        "systems": summaries, "skipped": skipped,
    }
    summary["rd_points"] = rd_points(summaries, columns)
    summary["bjontegaard"] = bjontegaard(summary["rd_points"], columns, args.bd_anchor)
    write_json(out / "summary.json", summary)
    write_markdown(out / "results.md", summary, columns)

    for c in columns:
        curves: dict[str, list] = {}
        for s in summary["rd_points"]:
            curves.setdefault(s["family"], []).append((s["measured_bitrate"], s["metrics"][c]["mean"], s["name"]))
        plot_rate_distortion(curves, c, out / f"rd_{c}.png")
    for u in [u for u in utts if u.id in example_ids and u.id not in skipped]:
        signals = []
        for label in ["reference"] + [s.name for s in systems]:
            f = out / "audio" / safe_name(label) / f"{safe_name(u.id)}.wav"
            if f.is_file():
                signals.append((label, sf.read(f, dtype="float32")[0]))
        if signals:
            plot_spectrograms(signals, args.eval_sampling_rate, out / "spectrograms" / f"{safe_name(u.id)}.png")

    print((out / "results.md").read_text(encoding="utf-8").split("\n## Rate")[0])
    print(f"{len(systems)} systems x {len(utt_ids)} utterances ({len(todo)} pairs computed, "
          f"{len(skipped)} utterances skipped) in {time.perf_counter() - started:.1f} s -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
