"""Words a codec changes: Whisper WER of each system's resynthesis against Whisper's transcript of the original.

    python benchmarks/codec_wer.py --data DIR --codec language-codec [OTHER ...] --num-quantizers 4 8 \
        --baselines opus:6 codec2:3200 [--asr whisper]

For clips without reference transcripts (LibriSpeech-mini has none): the reference is the ASR's own
transcript of the original, so the number is the share of words the round trip changes for that ASR (the
original scores 0 by construction). Printed per system, with the total reference words; `--json` writes the
rows and every transcript.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from evaluation.asr import get_asr, wer
from evaluation.baselines import parse_baseline
from evaluation.systems import operating_points
from tokenizer import AutoCodecTokenizer
from tokenizer.audio import load_mono
from tokenizer.utils.cli import run_cli
from tokenizer.utils.errors import CodecError

AUDIO = (".flac", ".wav", ".mp3", ".ogg")


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder of speech clips")
    p.add_argument("--codec", nargs="*", default=["language-codec"], help="codec names or directories")
    p.add_argument("--num-quantizers", nargs="*", type=int, default=None)
    p.add_argument("--baselines", nargs="*", default=["opus:6", "codec2:3200"])
    p.add_argument("--asr", default="whisper")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if not Path(args.data).is_dir():
        raise CodecError(f"--data {args.data}: not a folder")
    files = sorted(f for f in Path(args.data).iterdir() if f.suffix.lower() in AUDIO)
    if not files:
        raise CodecError(f"--data {args.data}: no audio files ({', '.join(AUDIO)})")
    asr = get_asr(args.asr)
    systems = []
    for spec in args.codec:
        tok = AutoCodecTokenizer.from_pretrained(spec)
        for point in operating_points(tok, args.num_quantizers):
            systems.append((f"{spec} {point.name}", point))
    systems += [(b, parse_baseline(b)) for b in args.baselines]
    refs, hyps = [], {name: [] for name, _ in systems}
    skipped = []
    for f in tqdm(files, desc="clips"):
        try:  # a corrupt clip is reported and skipped
            audio16, _ = load_mono(str(f), 16000, name=f.name)
        except CodecError as exc:
            skipped.append(f"{f.name}: {exc}")
            continue
        refs.append(asr.transcribe(np.asarray(audio16, dtype=np.float32), 16000))
        for name, system in systems:
            audio, _ = load_mono(str(f), system.sampling_rate, name=f.name)
            out = system.roundtrip(np.asarray(audio, dtype=np.float32)).audio
            hyps[name].append(asr.transcribe(out, system.sampling_rate))
    words = sum(len(r.split()) for r in refs)
    if not refs:
        raise CodecError(f"--data {args.data}: no readable clip ({skipped[0]})")
    rows = [{"system": name, "wer_vs_original_transcript": 100 * wer(refs, hyps[name]), "clips": len(refs),
             "reference_words": words, "asr": asr.name} for name, _ in systems]
    for line in skipped:
        print(f"skipped {line}")
    print(f"\n{len(refs)} clips, {words} words in the ASR's transcripts of the originals ({asr.name})")
    print("system                          WER vs the original's transcript (%)")
    for r in rows:
        print(f"{r['system']:32s}{r['wer_vs_original_transcript']:8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "references": refs, "hypotheses": hyps}, indent=1))
    return rows


if __name__ == "__main__":
    raise SystemExit(run_cli("codec_wer.py", lambda: main() and 0))
