"""`evaluate-tts`: intelligibility, speaker similarity and quality of generated speech.

    evaluate-tts --generated samples/ --reference test.jsonl --out reports/tts
    evaluate-tts --generated samples/ --reference test.jsonl --out reports/tts-paper --asr hubert --speaker wavlm

Reference manifest (JSONL, one object per line; paths relative to the manifest's folder or absolute):

    {"id": "1089_134686_000001", "text": "He hoped there would be stew for dinner.",
     "reference_audio": "gt/1089_134686_000001.wav", "prompt_audio": "prompts/1089_134686_000000.wav"}

- `id` (required): the generated file is `<generated>/<id>.wav`;
- `text` (required): what should have been said (normalised before scoring, see `asr.py`);
- `reference_audio` (optional): the ground-truth recording of the same text -> `spk_sim_reference`;
- `prompt_audio` (optional): the speaker prompt given to the TTS model -> `spk_sim_prompt`.
Other keys are ignored. A missing generated file is reported and left out, not fatal.

Metrics (`--metrics`, default `wer spk_sim dnsmos`): `wer` (also gives `cer` and the hypothesis text),
`spk_sim` (cosine similarity to the prompt and to the ground truth), `dnsmos`, `utmos`
(`--utmos-weights`). The ASR and speaker backends are written next to every number (`wer_backend`,
`spk_backend`). With `--asr-reference`, the ground-truth audio is transcribed too (`wer_reference`),
the floor the ASR itself sets.

Writes `per_utterance.csv` (resumable), `summary.json` (corpus WER/CER = errors summed over all
utterances, means / std of the rest), `results.md`, `histograms.png` and `spectrograms/<id>.png`.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from tokenizer.audio import load_mono, resample
from tokenizer.cli import run_cli
from tokenizer.errors import CodecError
from .asr import cer, get_asr, wer
from .metrics import UTMOSPredictor, dnsmos
from .report import (ResultStore, column_header, describe, fmt, fmt_stat, markdown_table, plot_histograms,
                     plot_spectrograms, safe_name, write_json)
from .speaker import get_speaker_encoder

logger = logging.getLogger(__name__)

TTS_METRICS = ("wer", "spk_sim", "dnsmos", "utmos")
DNSMOS_COLUMNS = ["dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"]


@dataclass
class ReferenceItem:
    """One manifest line: id, text, optional ground-truth and prompt audio paths."""

    id: str
    text: str
    reference_audio: Path | None = None
    prompt_audio: Path | None = None


def read_manifest(path: str | Path) -> list[ReferenceItem]:
    """Parse the reference manifest (format in the module docstring); `CodecError` names the bad line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CodecError(f"reference manifest not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CodecError(f"reference manifest {path} is not UTF-8 text (byte {exc.start}): expected JSONL") from exc
    items, seen = [], set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CodecError(f"{path}:{n}: not JSON ({exc})") from exc
        if not isinstance(row, dict) or not row.get("id") or not isinstance(row.get("text"), str):
            raise CodecError(f"{path}:{n}: needs string fields 'id' and 'text', got {line[:120]!r}")
        if str(row["id"]) in seen:
            raise CodecError(f"{path}:{n}: duplicate id {row['id']!r}")
        seen.add(str(row["id"]))

        def resolve(key: str) -> Path | None:
            value = row.get(key)
            if not value:
                return None
            p = Path(value).expanduser()
            return p if p.is_absolute() else path.parent / p

        items.append(ReferenceItem(str(row["id"]), row["text"], resolve("reference_audio"), resolve("prompt_audio")))
    if not items:
        raise CodecError(f"reference manifest {path} has no entries")
    return items


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evaluate-tts", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generated", type=Path, required=True, help="folder with <id>.wav files")
    p.add_argument("--reference", type=Path, required=True, help="reference manifest (JSONL)")
    p.add_argument("--out", type=Path, required=True, help="report directory")
    p.add_argument("--metrics", nargs="+", default=["wer", "spk_sim", "dnsmos"], choices=TTS_METRICS)
    p.add_argument("--asr", default="whisper", help="whisper (offline tiny.en), whisper:DIR, hubert, hubert:PATH_OR_ID")
    p.add_argument("--speaker-backend", default="resemblyzer", help="resemblyzer, wavlm or wavlm:PATH_OR_ID")
    p.add_argument("--utmos-weights", default=None, help="local UTMOS weights for 'utmos'")
    p.add_argument("--asr-reference", action="store_true", help="also transcribe the ground-truth audio")
    p.add_argument("--language", default="en", help="language of the texts (normaliser)")
    p.add_argument("--max-utterances", type=int, default=None)
    p.add_argument("--num-examples", type=int, default=3, help="utterances with spectrogram images")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_cli("evaluate-tts", _main, argv)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    metrics = list(dict.fromkeys(args.metrics))
    items = read_manifest(args.reference)[: args.max_utterances]
    if not args.generated.is_dir():
        raise CodecError(f"--generated {args.generated} is not a directory")
    asr = get_asr(args.asr) if "wer" in metrics else None
    spk = get_speaker_encoder(args.speaker_backend) if "spk_sim" in metrics else None
    utmos = UTMOSPredictor(args.utmos_weights) if "utmos" in metrics and args.utmos_weights else None
    if "utmos" in metrics and utmos is None:
        raise CodecError("metric 'utmos' needs --utmos-weights PATH (local weights; see UTMOSPredictor)")

    columns = ["text", "duration_s"]
    if asr:
        columns += ["hypothesis", "wer", "cer", "wer_backend"] + (["reference_hypothesis", "wer_reference"]
                                                                  if args.asr_reference else [])
    if spk:
        columns += ["spk_sim_prompt", "spk_sim_reference", "spk_backend"]
    if "dnsmos" in metrics:
        columns += DNSMOS_COLUMNS
    if utmos:
        columns += ["utmos"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "spectrograms").mkdir(exist_ok=True)
    text_columns = ["text", "hypothesis", "reference_hypothesis", "wer_backend", "spk_backend", "note"]
    store = ResultStore(args.out / "per_utterance.csv", columns + ["note"], key=("id",), text_columns=text_columns)
    required = [c for c in columns if c not in ("spk_sim_prompt", "spk_sim_reference", "reference_hypothesis",
                                                "wer_reference")]

    missing = [it.id for it in items if not (args.generated / f"{it.id}.wav").is_file()]
    for i in missing:
        logger.warning("no generated file %s", args.generated / f"{i}.wav")
    present = [it for it in items if it.id not in missing]
    if not present:
        raise CodecError(f"none of the {len(items)} manifest ids has a <id>.wav in {args.generated}")
    todo = [it for it in present if not store.done((it.id,), required)]
    for it in tqdm(todo, desc="evaluate-tts", unit="utt"):
        audio, sr = load_mono(args.generated / f"{it.id}.wav")
        row = {"id": it.id, "text": it.text, "duration_s": len(audio) / sr}
        notes = []
        if asr:
            hyp = asr.transcribe(audio, sr)
            row.update(hypothesis=hyp, wer=wer(it.text, hyp), cer=cer(it.text, hyp), wer_backend=asr.name)
            if args.asr_reference and it.reference_audio:
                ref_hyp = asr.transcribe(*load_mono(it.reference_audio))
                row.update(reference_hypothesis=ref_hyp, wer_reference=wer(it.text, ref_hyp))
        if spk:
            row["spk_backend"] = spk.name
            for key, path in (("spk_sim_prompt", it.prompt_audio), ("spk_sim_reference", it.reference_audio)):
                if path is None:
                    notes.append(f"no {key.split('_')[-1]} audio")
                    continue
                other, other_sr = load_mono(path)
                row[key] = spk.similarity(audio, other, sr, other_sr)
        if "dnsmos" in metrics:
            row.update(dnsmos(audio, sr))
        if utmos:
            row["utmos"] = utmos(audio, sr)
        row["note"] = "; ".join(notes) or None
        store.add(row)

    rows = [store.get((it.id,)) for it in present]
    stats_columns = [c for c in ["wer", "cer", "wer_reference", "spk_sim_prompt", "spk_sim_reference",
                                 *DNSMOS_COLUMNS, "utmos"] if c in columns]
    summary = {
        "generated": str(args.generated), "reference": str(args.reference), "num_utterances": len(rows),
        "missing": missing, "seconds": sum(r["duration_s"] for r in rows),
        "backends": {"asr": asr.name if asr else None, "speaker": spk.name if spk else None},
        "metrics": {c: describe(r.get(c) for r in rows) for c in stats_columns},
    }
    if asr:
        refs = [str(r["text"]) for r in rows]
        hyps = ["" if r.get("hypothesis") is None else str(r["hypothesis"]) for r in rows]
        summary["corpus"] = {"wer": wer(refs, hyps), "cer": cer(refs, hyps)}
    write_json(args.out / "summary.json", summary)

    lines = ["# TTS evaluation\n", f"Generated: `{args.generated}`; reference: `{args.reference}` "
             f"({len(rows)} utterances, {summary['seconds']:.1f} s, {len(missing)} missing). ASR: "
             f"{summary['backends']['asr']}; speaker similarity: {summary['backends']['speaker']}.\n"]
    headers, values = [], []
    if asr:
        headers += ["WER (corpus) ↓", "CER (corpus) ↓"]
        values += [fmt(summary["corpus"]["wer"]), fmt(summary["corpus"]["cer"])]
    labels = {"wer": "WER (mean utt.) ↓", "cer": "CER (mean utt.) ↓", "wer_reference": "WER of ground truth ↓",
              "spk_sim_prompt": "Sim. to prompt ↑", "spk_sim_reference": "Sim. to ground truth ↑"}
    for c in stats_columns:
        headers.append(labels.get(c, column_header(c)))
        values.append(fmt_stat(summary["metrics"][c]))
    lines.append(markdown_table(headers, [values]))
    lines.append("\nWER/CER after the normaliser of `evaluation.asr` (numbers to words, lower case, "
                 "no punctuation); corpus = errors summed over utterances / reference words. Mean ± std over "
                 "utterances otherwise.\n")
    (args.out / "results.md").write_text("\n".join(lines), encoding="utf-8")

    plot_histograms({c: [r.get(c) for r in rows] for c in stats_columns[:4] or ["duration_s"]},
                    args.out / "histograms.png")
    for it in present[: args.num_examples]:
        signals = [("generated", load_mono(args.generated / f"{it.id}.wav"))]
        for name, path in (("ground truth", it.reference_audio), ("prompt", it.prompt_audio)):
            if path:
                signals.append((name, load_mono(path)))
        plot_spectrograms([(f"{name}: {it.id}" if name == "generated" else name, resample(a, s, 16000))
                           for name, (a, s) in signals], 16000, args.out / "spectrograms" / f"{safe_name(it.id)}.png")

    print(lines[-2])
    print(f"{len(rows)} utterances ({len(todo)} computed, {len(missing)} missing) in "
          f"{time.perf_counter() - started:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
