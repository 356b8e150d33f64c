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
Other keys (e.g. `prompt_text`, which `synthesize` reads) are ignored. A missing or unreadable generated
file is reported (`missing` / `skipped` in summary.json) and left out, not fatal. `--language` selects
the transcript normaliser and the ASR's language.

Synthesis record (`<generated>/<id>.wav.json`, written by `synthesize` beside every output; sample counts at
`sampling_rate` Hz):

    {"format_version": 1, "id": "1089_134686_000001", "mode": "continuation", "sampling_rate": 16000,
     "num_samples": 131200, "prompt_samples": 48000, "prompt_seconds": 3.0, "prompt_input_samples": 48000,
     "prompt_input_seconds": 3.0, "prompt_audio": "/data/LibriTTS/.../1089_134686_000001.wav",
     "text": "He hoped ...", "prompt_text": null, "model": {"path": "/runs/valle/final", "digest": "9f2c..."},
     "at_context": false, "audio_sha256": "41d0..."}

(evaluate-tts reads `mode`, `sampling_rate`, `prompt_samples`, `prompt_input_samples`, the model digest and
`audio_sha256`, the sha256 of the WAV's bytes: a record whose digest is not its WAV's is not that WAV's record
and the clip is reported as `skipped`; a `text` other than the reference's and `at_context` (the generation
filled the model's context, so the speech may be cut) are noted in the row; the rest is for the reader.)

- `mode`: `continuation` (the output is the prompt's codec resynthesis, `prompt_samples` long = the prompt's
  frames / frame rate, followed by the generated rest; the model was given the first `prompt_input_samples`
  of the prompt file: `prompt_audio`, else `reference_audio`, as `synthesize` takes it) or `cross-sentence`
  (the output is the new sentence only, `prompt_samples` 0; the model was given the whole `prompt_audio`).
- Continuation: speaker similarity, DNSMOS and UTMOS score the generated part only (the output after
  `prompt_samples`): `spk_sim_prompt` against the crop of the prompt file the model saw, `spk_sim_reference`
  against the ground truth after that crop (the span the model had to generate). WER/CER stay on the whole
  output: the text is the whole transcript and cannot be split at the prompt's end without an alignment;
  the prompt's words are then read from its codec resynthesis, so continuation WER is a little flattered.
  A clip with nothing after its prompt is reported as `skipped`.
- Cross-sentence: every score on the whole output, `spk_sim_prompt` against the whole prompt file.
- No record (outputs of older versions or other systems): as before, every score on the whole file and the
  whole prompt / ground-truth files; the mode is reported as `unknown (whole file)`, never guessed.

Metrics (`--metrics`, default `wer spk_sim dnsmos`): `wer` (also gives `cer` and the hypothesis text),
`spk_sim` (cosine similarity to the prompt and to the ground truth), `dnsmos`, `utmos`
(`--utmos-weights`). The ASR and speaker backends (with their model) are written next to every number
(`wer_backend`, `spk_backend`) and in summary.json / results.md, as are the mode and the prompt seconds
(per row: `mode`, `prompt_s` = prompt audio the model was given, `scored_s` = audio the speaker and quality
scores saw). With `--asr-reference`, the ground-truth audio is transcribed too (`wer_reference`), the floor
the ASR itself sets.

Provenance: every row records the sha256 of the WAV scored (`audio_sha256`), the TTS export that made it
(`model`, from the record) and `provenance`, one digest per group of columns (`GROUP_COLUMNS`: base, WER,
speaker similarity, quality) of what that group is computed from (the WAV, its record, the reference text,
the ground-truth and prompt files as each group uses them, and its part of the protocol); a re-run recomputes
exactly the groups whose provenance changed (another speaker model re-embeds without re-transcribing) and
keeps nothing of a recomputed group's old values; `note_parts` holds each group's notes.
summary.json records the protocol (`protocol`: each backend's name, settings, package versions and weight
files with their sha256; the normaliser as a digest of its output on probe sentences; the thresholds) and the
exports that made the clips (`models`; more than one is reported as mixed systems). A generated part shorter
than `MIN_SCORED_SECONDS` or silent gets NaN speaker similarity and quality scores, with a note.

Writes `per_utterance.csv` (resumable), `summary.json` (corpus WER/CER = errors summed over all
utterances, means / std of the rest), `results.md`, `histograms.png` and `spectrograms/<id>.png`.
"""

from __future__ import annotations

import argparse
import errno
import functools
import hashlib
import json
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from tokenizer.audio import load_mono, resample
from tokenizer.utils.cli import run_cli
from tokenizer.utils.errors import AudioError, CodecError
from .asr import ASRBackend, cer, get_asr, normaliser_digest, package_versions, wer
from .metrics import UTMOSPredictor, dnsmos
from .report import (ResultStore, column_header, describe, fmt, fmt_stat, markdown_table, plot_histograms,
                     plot_spectrograms, safe_name, write_json)
from .speaker import SpeakerEncoder, get_speaker_encoder

logger = logging.getLogger(__name__)

TTS_METRICS = ("wer", "spk_sim", "dnsmos", "utmos")
DNSMOS_COLUMNS = ["dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"]
STATS_COLUMNS = ["wer", "cer", "wer_reference", "spk_sim_prompt", "spk_sim_reference", *DNSMOS_COLUMNS, "utmos"]
STATS_LABELS = {"wer": "WER (mean utt.) ↓", "cer": "CER (mean utt.) ↓", "wer_reference": "WER of ground truth ↓",
                "spk_sim_prompt": "Sim. to prompt ↑", "spk_sim_reference": "Sim. to ground truth ↑"}
TEXT_COLUMNS = ["text", "mode", "hypothesis", "reference_hypothesis", "wer_backend", "spk_backend", "note",
                "audio_sha256", "model", "provenance", "note_parts"]
# provenance of a row: which audio, record, text and reference files were scored with which protocol
# (`provenance`: a JSON object of one digest per group of columns; `note_parts`: the notes of each group)
PROVENANCE_COLUMNS = ["audio_sha256", "model", "provenance", "note_parts"]
# groups of columns computed together, each recomputed only when what it is computed from changed
# ("base": what the file and its record say; cheap, redone with any other group)
GROUP_COLUMNS = {"base": ["text", "duration_s", "mode", "prompt_s", "scored_s", "audio_sha256", "model"],
                 "wer": ["hypothesis", "wer", "cer", "wer_backend", "reference_hypothesis", "wer_reference"],
                 "spk": ["spk_sim_prompt", "spk_sim_reference", "spk_backend"],
                 "quality": [*DNSMOS_COLUMNS, "utmos"]}
MODES = ("cross-sentence", "continuation")
NO_RECORD = "unknown (whole file)"
# below this much generated audio (or below SILENCE_PEAK), speaker similarity and quality are undefined (NaN,
# with a note): a speaker encoder or a MOS predictor returns a plausible number for 1 ms or digital silence
MIN_SCORED_SECONDS = 0.3
SILENCE_PEAK = 1e-4  # -80 dBFS


@functools.lru_cache(maxsize=4096)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def file_digest(path: str | Path | None) -> str | None:
    """sha256 (16 hex digits) of a file's bytes (cached per size and modification time); None when `path` is
    None or not a readable file."""
    if path is None:
        return None
    try:
        st = Path(path).stat()
        return _file_digest(str(path), st.st_size, st.st_mtime_ns) if Path(path).is_file() else None
    except OSError:
        return None


def json_digest(value: Any) -> str:
    """sha256 (16 hex digits) of `value` as canonical JSON."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


@dataclass
class ReferenceItem:
    """One manifest line: id, text, optional ground-truth and prompt audio paths."""

    id: str
    text: str
    reference_audio: Path | None = None
    prompt_audio: Path | None = None


@dataclass
class SynthesisRecord:
    """What `synthesize` recorded beside `<id>.wav` (format in the module docstring): the mode, where the
    prompt part of the output ends (`prompt_samples`) and how much of the prompt file the model was given
    (`prompt_input_samples`), both in samples at `sampling_rate` Hz."""

    mode: str
    sampling_rate: int
    prompt_samples: int
    prompt_input_samples: int
    model_digest: str | None = None  # the TTS export that made the WAV (records before it: None)
    audio_sha256: str | None = None  # the WAV's bytes when the record was written (records before it: None)
    text: str | None = None  # what the model was asked to say
    at_context: bool = False  # the generation filled the model's context (the speech may be cut)

    @property
    def prompt_input_seconds(self) -> float:
        """Seconds of prompt audio the model was given."""
        return self.prompt_input_samples / self.sampling_rate

    def prompt_end(self, sampling_rate: int) -> int:
        """The sample (at `sampling_rate` Hz) of the output where the generated part starts."""
        return round(self.prompt_samples * sampling_rate / self.sampling_rate)


def read_synthesis_record(wav: Path) -> SynthesisRecord | None:
    """The record `<wav>.json` that `synthesize` wrote beside `wav`; None when there is none; CodecError
    naming the file when it is malformed or describes other audio (its `audio_sha256` is not `wav`'s)."""
    path = wav.with_name(wav.name + ".json")
    if not path.is_file():
        return None
    try:
        row = json.loads(path.read_text(encoding="utf-8"))
        model = row.get("model")
        record = SynthesisRecord(str(row["mode"]), int(row["sampling_rate"]), int(row["prompt_samples"]),
                                 int(row["prompt_input_samples"]),
                                 str(model["digest"]) if isinstance(model, dict) and model.get("digest") else None,
                                 str(row["audio_sha256"]) if row.get("audio_sha256") else None,
                                 row["text"] if isinstance(row.get("text"), str) else None,
                                 bool(row.get("at_context")))
    except (ValueError, KeyError, TypeError) as exc:  # not JSON / not UTF-8, a field missing or not a number
        raise CodecError(f"synthesis record {path} is malformed ({type(exc).__name__}: {exc}); expected what "
                         f"`synthesize` writes") from None
    if record.mode not in MODES or record.sampling_rate <= 0 or min(record.prompt_samples,
                                                                    record.prompt_input_samples) < 0:
        raise CodecError(f"synthesis record {path}: mode {record.mode!r}, sampling_rate {record.sampling_rate}, "
                         f"prompt_samples {record.prompt_samples}, prompt_input_samples "
                         f"{record.prompt_input_samples}: expected a mode of {MODES}, a positive rate and "
                         f"non-negative counts")
    if record.audio_sha256 and record.audio_sha256 != file_digest(wav):
        raise CodecError(f"synthesis record {path} describes other audio (sha256 {record.audio_sha256}, {wav.name} "
                         f"is {file_digest(wav)}): the WAV was replaced after synthesis; not scored as its output")
    return record


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
        rid = row.get("id") if isinstance(row, dict) else None
        # an id is a non-empty string or an integer ({"id": 7} is "7"), as `synthesize` reads the same manifest
        if not (isinstance(rid, str) and rid or isinstance(rid, int) and not isinstance(rid, bool)) or not \
                isinstance(row.get("text"), str):
            raise CodecError(f"{path}:{n}: needs fields 'id' (a string or an integer) and 'text' (a string), "
                             f"got {line[:120]!r}")
        if str(row["id"]) in seen:
            raise CodecError(f"{path}:{n}: duplicate id {row['id']!r}")
        seen.add(str(row["id"]))

        for key in ("reference_audio", "prompt_audio"):
            if row.get(key) is not None and not isinstance(row[key], str):
                raise CodecError(f"{path}:{n}: {key} must be a string (a file path), got {row[key]!r}")

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
    p.add_argument("--language", default="en", help="language of the texts: the transcript normaliser and the "
                   "ASR's language (the default ASR models are English-only)")
    p.add_argument("--max-utterances", type=int, default=None)
    p.add_argument("--num-examples", type=int, default=3, help="utterances with spectrogram images")
    return p


@dataclass
class Scorers:
    """What scores one generated clip: the backends the chosen metrics need (None when not asked for)."""

    asr: ASRBackend | None
    speaker: SpeakerEncoder | None
    dnsmos: bool
    utmos: UTMOSPredictor | None
    language: str = "en"
    asr_reference: bool = False

    @classmethod
    def from_args(cls, args) -> "Scorers":
        metrics = set(args.metrics)
        if "utmos" in metrics and not args.utmos_weights:
            raise CodecError("metric 'utmos' needs --utmos-weights PATH (local weights; see UTMOSPredictor)")
        return cls(asr=get_asr(args.asr, args.language) if "wer" in metrics else None,
                   speaker=get_speaker_encoder(args.speaker_backend) if "spk_sim" in metrics else None,
                   dnsmos="dnsmos" in metrics,
                   utmos=UTMOSPredictor(args.utmos_weights) if "utmos" in metrics else None,
                   language=args.language, asr_reference=args.asr_reference)

    def protocol(self) -> dict[str, Any]:
        """What the numbers of a run depend on besides its inputs (summary.json "protocol"): per backend its
        name, settings, package versions and the sha256 of its weight files; the transcript normaliser (as a
        digest of its output, `evaluation.asr.normaliser_digest`); the language; the scoring thresholds."""
        def pinned(backend) -> dict[str, Any] | None:
            if backend is None:
                return None
            info = dict(backend.protocol())
            weights = info.pop("weights", None)
            if weights is not None:
                info["weights"] = {str(w): file_digest(w) for w in weights}
            return info

        return {"asr": pinned(self.asr), "asr_reference": self.asr_reference and self.asr is not None,
                "speaker": pinned(self.speaker),
                "dnsmos": {"packages": package_versions("speechmos", "onnxruntime")} if self.dnsmos else None,
                "utmos": ({"weights": {str(self.utmos.path): file_digest(self.utmos.path)}}
                          if self.utmos else None),
                "language": self.language,
                "normaliser": {"digest": normaliser_digest(self.language)} if self.asr else None,
                "min_scored_seconds": MIN_SCORED_SECONDS, "silence_peak": SILENCE_PEAK}

    def groups(self) -> list[str]:
        """The column groups (`GROUP_COLUMNS`) this run computes."""
        return ["base", *(["wer"] if self.asr else []), *(["spk"] if self.speaker else []),
                *(["quality"] if self.dnsmos or self.utmos else [])]

    @staticmethod
    def group_protocols(protocol: dict[str, Any]) -> dict[str, Any]:
        """The part of `protocol` each group's numbers depend on."""
        thresholds = {k: protocol[k] for k in ("min_scored_seconds", "silence_peak")}
        return {"base": {}, "wer": {k: protocol[k] for k in ("asr", "asr_reference", "language", "normaliser")},
                "spk": {"speaker": protocol["speaker"], **thresholds},
                "quality": {"dnsmos": protocol["dnsmos"], "utmos": protocol["utmos"], **thresholds}}

    def required(self, group: str) -> list[str]:
        """Columns of `group` that a computed row always has (the others may be empty: no ground truth...)."""
        return {"base": ["text", "duration_s", "mode", "scored_s", "audio_sha256"],
                "wer": ["hypothesis", "wer", "cer", "wer_backend"], "spk": ["spk_backend"],
                "quality": [*(DNSMOS_COLUMNS if self.dnsmos else []), *(["utmos"] if self.utmos else [])]}[group]

    def columns(self) -> list[str]:
        """Per-utterance CSV columns, in order."""
        columns = ["text", "duration_s", "mode", "prompt_s", "scored_s", *PROVENANCE_COLUMNS]
        if self.asr:
            columns += ["hypothesis", "wer", "cer", "wer_backend"]
            columns += ["reference_hypothesis", "wer_reference"] if self.asr_reference else []
        if self.speaker:
            columns += ["spk_sim_prompt", "spk_sim_reference", "spk_backend"]
        if self.dnsmos:
            columns += DNSMOS_COLUMNS
        if self.utmos:
            columns += ["utmos"]
        return columns

    def score(self, item: ReferenceItem, audio: np.ndarray, sr: int, record: SynthesisRecord | None = None,
              groups: list[str] | None = None) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """(row values, notes per group) for the generated clip `audio` (T,) at `sr` Hz of `item`, made as
        `record` says (None: whole file; module docstring), for `groups` (default: all of this run's). A
        prompt or ground-truth file that cannot be read leaves its columns empty, with the reason noted."""
        groups = self.groups() if groups is None else groups
        generated = audio[record.prompt_end(sr):] if record else audio
        row: dict[str, Any] = {"id": item.id, "text": item.text, "duration_s": len(audio) / sr,
                               "mode": record.mode if record else NO_RECORD,
                               "prompt_s": record.prompt_input_seconds if record else None,
                               "scored_s": len(generated) / sr}
        notes: dict[str, list[str]] = {g: [] for g in groups}
        if record and record.text is not None and record.text != item.text:
            notes["base"].append(f"synthesized from another text ({record.text[:60]!r}) than the reference")
        if record and record.at_context:
            notes["base"].append("generation filled the model's context: the speech may be cut")
        if "wer" in groups:
            hyp = self.asr.transcribe(audio, sr)
            row.update(hypothesis=hyp, wer=wer(item.text, hyp, language=self.language),
                       cer=cer(item.text, hyp, language=self.language), wer_backend=self.asr.name)
            if self.asr_reference and item.reference_audio:
                try:
                    ref_hyp = self.asr.transcribe(*load_mono(item.reference_audio))
                    row.update(reference_hypothesis=ref_hyp, wer_reference=wer(item.text, ref_hyp,
                                                                               language=self.language))
                except AudioError as exc:
                    notes["wer"].append(f"ground truth not transcribed: {exc}")
        unscorable = too_short_or_silent(generated, sr)
        if "spk" in groups:
            row["spk_backend"] = self.speaker.name
            if unscorable:
                notes["spk"].append(f"generated audio {unscorable}: no speaker similarity")
                row.update(spk_sim_prompt=math.nan, spk_sim_reference=math.nan)
            for key, path, rate, span in [] if unscorable else speaker_references(item, record):
                what = key.split("_")[-1]
                if path is None:
                    notes["spk"].append(f"no {what} audio")
                    continue
                try:
                    other, other_sr = load_mono(path, rate)
                except AudioError as exc:
                    notes["spk"].append(f"{what} audio unreadable: {exc}")
                    continue
                if other[span].size == 0:
                    notes["spk"].append(f"{what} audio has nothing after the {record.prompt_input_seconds:.2f} s "
                                        f"prompt")
                    continue
                if too_short_or_silent(other[span], other_sr):
                    notes["spk"].append(f"{what} audio {too_short_or_silent(other[span], other_sr)}: no similarity")
                    row[key] = math.nan
                    continue
                row[key] = self.speaker.similarity(generated, other[span], sr, other_sr)
        if "quality" in groups:
            if unscorable:
                notes["quality"].append(f"generated audio {unscorable}: no quality score")
            if self.dnsmos:
                row.update(dnsmos(generated, sr) if not unscorable else dict.fromkeys(DNSMOS_COLUMNS, math.nan))
            if self.utmos:
                row["utmos"] = self.utmos(generated, sr) if not unscorable else math.nan
        return row, notes


def too_short_or_silent(audio: np.ndarray, sr: int) -> str | None:
    """Why `audio` (T,) at `sr` Hz is too little to score a voice or a quality on ("0.05 s long", "silent"),
    or None when it can be scored (`MIN_SCORED_SECONDS`, `SILENCE_PEAK`)."""
    if len(audio) < MIN_SCORED_SECONDS * sr:
        return f"is {len(audio) / sr:.2f} s long (under {MIN_SCORED_SECONDS} s)"
    if not np.abs(audio).max() >= SILENCE_PEAK:  # NaN samples count as silent too
        return "is silent"
    return None


def speaker_references(item: ReferenceItem, record: SynthesisRecord | None) -> list[tuple[str, Path | None,
                                                                                         int | None, slice]]:
    """(column, file, rate to load it at (None: its own), part of it) to compare the generated speech with.
    Continuation: the prompt crop the model saw and the ground truth after it, at the record's rate, where
    the record's sample counts hold; otherwise the whole prompt and ground-truth files."""
    if record is None or record.mode != "continuation":
        return [("spk_sim_prompt", item.prompt_audio, None, slice(None)),
                ("spk_sim_reference", item.reference_audio, None, slice(None))]
    n = record.prompt_input_samples
    return [("spk_sim_prompt", item.prompt_audio or item.reference_audio, record.sampling_rate, slice(0, n)),
            ("spk_sim_reference", item.reference_audio, record.sampling_rate, slice(n, None))]


def summarize(rows: list[dict], columns: list[str], args, scorers: Scorers, missing: list[str],
              skipped: dict[str, str], protocol: dict[str, Any] | None = None) -> dict[str, Any]:
    """summary.json: means / std / count of every score column and, with ASR, corpus WER / CER (errors
    summed over utterances); the protocol (`Scorers.protocol`) and the TTS exports that made the clips."""
    stats_columns = [c for c in STATS_COLUMNS if c in columns]
    modes = Counter(r.get("mode") or NO_RECORD for r in rows)
    models = Counter(r.get("model") or "unknown (no record)" for r in rows)
    summary = {
        "generated": str(args.generated), "reference": str(args.reference), "language": scorers.language,
        "num_utterances": len(rows), "missing": missing, "skipped": skipped,
        "mode": next(iter(modes)) if len(modes) == 1 else "mixed", "modes": dict(modes),
        "prompt_seconds": describe(r.get("prompt_s") for r in rows),
        "seconds": sum(r["duration_s"] for r in rows),
        "scored_seconds": sum(r["scored_s"] for r in rows),
        "backends": {"asr": scorers.asr.name if scorers.asr else None,
                     "speaker": scorers.speaker.name if scorers.speaker else None},
        "protocol": {**(protocol if protocol is not None else scorers.protocol()),
                     "mode": dict(modes), "prompt_seconds": describe(r.get("prompt_s") for r in rows)},
        "models": dict(models),
        "stats_columns": stats_columns,
        "metrics": {c: describe(r.get(c) for r in rows) for c in stats_columns},
    }
    if scorers.asr:
        refs = [str(r["text"]) for r in rows]
        hyps = ["" if r.get("hypothesis") is None else str(r["hypothesis"]) for r in rows]
        summary["corpus"] = {"wer": wer(refs, hyps, language=scorers.language),
                             "cer": cer(refs, hyps, language=scorers.language)}
    return summary


def write_markdown(path: Path, summary: dict[str, Any]) -> str:
    """results.md: one table of corpus and mean scores; returns the table."""
    n = summary["num_utterances"]
    prompt = summary["prompt_seconds"]
    modes = ", ".join(f"{m}: {k}" for m, k in summary["modes"].items())
    lines = ["# TTS evaluation\n", f"Generated: `{summary['generated']}`; reference: `{summary['reference']}` "
             f"({n} utterances, {summary['seconds']:.1f} s, {len(summary['missing'])} missing, "
             f"{len(summary['skipped'])} unreadable). ASR: {summary['backends']['asr']}; speaker similarity: "
             f"{summary['backends']['speaker']}; language: {summary['language']} (protocol with weight digests "
             f"in summary.json).\n",
             *([f"**Mixed systems**: these clips were made by {len(summary['models'])} different TTS exports "
                f"({', '.join(f'{m}: {k}' for m, k in summary['models'].items())}).\n"]
               if len(summary["models"]) > 1 else []),
             f"Mode: {summary['mode']}" + (f" ({modes})" if summary["mode"] == "mixed" else "") + "; prompt: "
             + (f"{fmt_stat(prompt, 2, total=n)} s" if prompt["n"] else "not recorded")
             + f"; speaker similarity and quality scored on {summary['scored_seconds']:.1f} s "
             + ("(the generated part: continuation prompts removed), WER on the whole files.\n"
                if "continuation" in summary["modes"] else "(the whole files).\n")]
    headers, values = [], []
    if "corpus" in summary:
        headers += ["WER (corpus) ↓", "CER (corpus) ↓"]
        values += [fmt(summary["corpus"]["wer"]), fmt(summary["corpus"]["cer"])]
    for c in summary["stats_columns"]:
        headers.append(STATS_LABELS.get(c, column_header(c)))
        values.append(fmt_stat(summary["metrics"][c], total=n))
    table = markdown_table(headers, [values])
    lines.append(table)
    lines.append("\nWER/CER after the normaliser of `evaluation.asr` (English: numbers to words; all: lower case, "
                 "no punctuation); corpus = errors summed over utterances / reference words. Mean ± std over "
                 "utterances otherwise; (n=k): only k utterances had that score.\n")
    path.write_text("\n".join(lines), encoding="utf-8")
    return table


def plot_examples(out: Path, items: list[ReferenceItem], generated: Path) -> None:
    """spectrograms/<id>.png: generated above ground truth and prompt (when given), at 16 kHz."""
    for it in items:
        signals = [("generated", load_mono(generated / f"{it.id}.wav"))]
        for name, path in (("ground truth", it.reference_audio), ("prompt", it.prompt_audio)):
            if path and path.is_file():
                signals.append((name, load_mono(path)))
        plot_spectrograms([(f"{name}: {it.id}" if name == "generated" else name, resample(a, s, 16000))
                           for name, (a, s) in signals], 16000, out / "spectrograms" / f"{safe_name(it.id)}.png")


def item_provenance(item: ReferenceItem, generated: Path, protocol: dict[str, Any]) -> dict[str, str]:
    """Per column group, the digest of everything its numbers are computed from: the generated WAV's bytes
    and its synthesis record; the reference text (base, WER); the ground-truth audio (speaker similarity, and
    WER of the ground truth); the prompt audio (speaker similarity); that group's part of the protocol. A saved
    group with another digest is recomputed (`per_utterance.csv` column `provenance`)."""
    wav = generated / f"{item.id}.wav"
    common = {"audio": file_digest(wav), "record": file_digest(wav.with_name(wav.name + ".json"))}
    reference, prompt = file_digest(item.reference_audio), file_digest(item.prompt_audio)
    inputs = {"base": {"text": item.text}, "wer": {"text": item.text, "reference_audio": reference},
              "spk": {"reference_audio": reference, "prompt_audio": prompt}, "quality": {}}
    return {g: json_digest({**common, **inputs[g], "protocol": p})
            for g, p in Scorers.group_protocols(protocol).items()}


def _json_cell(value: Any) -> dict:
    try:
        parsed = json.loads(value) if isinstance(value, str) and value else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def stale_groups(row: dict[str, Any] | None, provenance: dict[str, str], scorers: Scorers) -> list[str]:
    """This run's groups that `row` (None: no row) lacks or holds from other inputs or another protocol; "base"
    with any other, since the base columns describe the file the other numbers were computed from."""
    saved = _json_cell((row or {}).get("provenance"))
    stale = [g for g in scorers.groups() if saved.get(g) != provenance[g]
             or any(row.get(c) is None for c in scorers.required(g))]
    return ["base", *[g for g in stale if g != "base"]] if stale else []


def merged_row(store: ResultStore, old: dict[str, Any] | None, new: dict[str, Any], notes: dict[str, list[str]],
               provenance: dict[str, str], groups: list[str]) -> dict[str, Any]:
    """The whole row: the recomputed groups (`notes` keys) from `new`, this run's other `groups` as `old` had
    them (still valid: their provenance is unchanged), nothing of a group this run does not compute (its
    inputs changed unchecked). A recomputed group keeps nothing of its old values."""
    old = old or {}
    redone = set(notes)
    owner = {c: g for g, cols in GROUP_COLUMNS.items() for c in cols}
    row = {c: (new.get(c) if owner.get(c) in redone else old.get(c) if owner.get(c) in groups else None)
           for c in store.columns}
    row["id"] = new["id"]
    parts = {g: v for g, v in _json_cell(old.get("note_parts")).items() if g in groups}
    parts.update({g: notes[g] for g in redone})
    kept = {g: v for g, v in _json_cell(old.get("provenance")).items() if g in groups}
    row["provenance"] = json.dumps({**kept, **{g: provenance[g] for g in redone}}, sort_keys=True)
    row["note_parts"] = json.dumps({g: parts[g] for g in GROUP_COLUMNS if parts.get(g)}, ensure_ascii=False)
    row["note"] = "; ".join(n for g in GROUP_COLUMNS for n in parts.get(g, [])) or None
    return row


def main(argv: list[str] | None = None) -> int:
    return run_cli("evaluate-tts", _main, argv)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    if args.max_utterances is not None and args.max_utterances < 1:
        raise CodecError(f"--max-utterances must be >= 1 (or left out), got {args.max_utterances}")
    if args.num_examples < 0:
        raise CodecError(f"--num-examples must be >= 0, got {args.num_examples}")
    for parent in (args.out, *args.out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise CodecError(f"--out {args.out}: {parent} is a file, not a folder")
            break
    items = read_manifest(args.reference)[: args.max_utterances]
    if not args.generated.is_dir():
        raise CodecError(f"--generated {args.generated} is not a directory")
    missing = [it.id for it in items if not (args.generated / f"{it.id}.wav").is_file()]
    for i in missing:
        logger.warning("no generated file %s", args.generated / f"{i}.wav")
    present = [it for it in items if it.id not in missing]
    if not present:
        raise CodecError(f"none of the {len(items)} manifest ids has a <id>.wav in {args.generated}")
    scorers = Scorers.from_args(args)
    columns = scorers.columns()
    protocol = scorers.protocol()
    try:
        (args.out / "spectrograms").mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only mount, no permission (a full disk is run_cli's "disk full" line)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise CodecError(f"--out {args.out}: cannot write there ({exc.strerror or exc})") from None
    store = ResultStore(args.out / "per_utterance.csv", columns + ["note"], key=("id",), text_columns=TEXT_COLUMNS)

    # A saved number is this run's only when it was computed from the same bytes with the same protocol.
    provenance = {it.id: item_provenance(it, args.generated, protocol) for it in present}
    stale = {it.id: stale_groups(store.get((it.id,)), provenance[it.id], scorers) for it in present}
    skipped: dict[str, str] = {}
    todo = [it for it in present if stale[it.id]]
    for it in tqdm(todo, desc="evaluate-tts", unit="utt"):
        wav = args.generated / f"{it.id}.wav"
        try:
            audio, sr = load_mono(wav)
            record = read_synthesis_record(wav)
            if record and record.prompt_end(sr) >= len(audio):
                raise AudioError(f"{wav}: nothing generated after the prompt (the first "
                                 f"{record.prompt_samples / record.sampling_rate:.2f} s of {len(audio) / sr:.2f} s)")
        except CodecError as exc:  # one bad file is that utterance's problem: reported, the rest scored
            skipped[it.id] = str(exc)
            logger.warning("skipping %s: %s", it.id, exc)
            continue
        values, notes = scorers.score(it, audio, sr, record, stale[it.id])
        values.update(audio_sha256=file_digest(wav), model=record.model_digest if record else None)
        store.add(merged_row(store, store.get((it.id,)), values, notes, provenance[it.id], scorers.groups()),
                  replace=True)

    scored = [it for it in present if it.id not in skipped]
    rows = [r for r in (store.get((it.id,)) for it in scored) if r is not None]
    models = {r.get("model") for r in rows}
    if len(models) > 1:
        logger.warning("the clips in %s were made by %d different TTS exports (%s): the scores mix systems",
                       args.generated, len(models), ", ".join(sorted(m or "unknown" for m in models)))
    summary = summarize(rows, columns, args, scorers, missing, skipped, protocol)
    write_json(args.out / "summary.json", summary)
    table = write_markdown(args.out / "results.md", summary)
    plot_histograms({c: [r.get(c) for r in rows] for c in summary["stats_columns"][:4] or ["duration_s"]},
                    args.out / "histograms.png")
    plot_examples(args.out, scored[: args.num_examples], args.generated)

    print(table)
    redone = Counter(g for it in todo if it.id not in skipped for g in stale[it.id] if g != "base")
    detail = ", ".join(f"{g} {redone[g]}" for g in scorers.groups() if g != "base")
    print(f"{len(rows)} utterances ({len(todo) - len(skipped)} computed{': ' + detail if detail else ''}, "
          f"{len(missing)} missing, {len(skipped)} unreadable) in {time.perf_counter() - started:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
