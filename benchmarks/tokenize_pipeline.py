"""End-to-end `tokenize-corpus` throughput next to the codec's raw batched encode on the same audio.

    python benchmarks/tokenize_pipeline.py [--codec language-codec] [--minutes 3] [--num-workers 1]

Builds a LibriTTS-layout corpus in a temporary folder from ../shared/data/librispeech-mini (real 16 kHz
speech; synthetic tones when that folder is absent), then measures in one process:
- raw: audio already decoded and resampled in memory, encoded in the same duration-sorted batches;
- pipeline: `tokenize-corpus` on the files (listing, reading, resampling in workers, encoding, shard
  writing, manifest), without phonemes so that only the audio path is compared.
Prints both as x real-time and the pipeline's overhead on top of the model (goal: under 15%).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from data_prep.corpora import get_corpus
from data_prep.pipeline import length_batches, tokenize_corpus
from tokenizer import AutoCodecTokenizer
from tokenizer.audio import load_mono

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "librispeech-mini"


def build_corpus(root: Path, minutes: float) -> list[Path]:
    files = sorted(DATA.glob("*.flac")) if DATA.is_dir() else []
    out, total = [], 0.0
    rng = np.random.default_rng(0)
    i = 0
    while total < minutes * 60:
        if files:
            src = files[i % len(files)]
            audio, sr = sf.read(src, dtype="float32")
        else:
            sr = 16000
            t = np.arange(int(rng.uniform(3, 12) * sr)) / sr
            audio = (0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t)).astype(np.float32)
        d = root / "bench" / f"{1000 + i % 20}" / "1"
        d.mkdir(parents=True, exist_ok=True)
        uid = f"{1000 + i % 20}_1_{i:06d}_000000"
        sf.write(d / f"{uid}.wav", audio, sr)
        (d / f"{uid}.original.txt").write_text("sample text")
        (d / f"{uid}.normalized.txt").write_text("sample text")
        out.append(d / f"{uid}.wav")
        total += len(audio) / sr
        i += 1
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--codec", default="language-codec")
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--batch-seconds", type=float, default=120.0)
    p.add_argument("--num-workers", type=int, default=1)
    args = p.parse_args(argv)
    tok = AutoCodecTokenizer.from_pretrained(args.codec)
    with tempfile.TemporaryDirectory() as tmp:
        files = build_corpus(Path(tmp) / "LibriTTS", args.minutes)
        clips = [load_mono(f, tok.sampling_rate)[0] for f in files]
        seconds = sum(len(c) for c in clips) / tok.sampling_rate
        lengths = [len(c) for c in clips]
        order = sorted(range(len(clips)), key=lambda i: lengths[i])
        batches = length_batches(order, lengths, int(args.batch_seconds * tok.sampling_rate))
        t0 = time.perf_counter()
        for b in batches:
            tok([clips[i] for i in b], sampling_rate=tok.sampling_rate)
        raw = time.perf_counter() - t0
        t0 = time.perf_counter()
        tokenize_corpus(get_corpus("libritts", root=str(Path(tmp) / "LibriTTS")), tok, Path(tmp) / "out",
                        phonemes=False, num_workers=args.num_workers, batch_seconds=args.batch_seconds, shard_size=50)
        pipe = time.perf_counter() - t0
    result = {"audio_seconds": seconds, "raw_x_rt": seconds / raw, "pipeline_x_rt": seconds / pipe,
              "overhead": pipe / raw - 1}
    print(f"\n{len(files)} files, {seconds / 60:.1f} min of audio, codec {tok}")
    print(f"raw batched encode : {result['raw_x_rt']:.1f}x real-time ({raw:.1f} s)")
    print(f"tokenize-corpus    : {result['pipeline_x_rt']:.1f}x real-time ({pipe:.1f} s)")
    print(f"pipeline overhead  : {100 * result['overhead']:+.1f}% on top of the model (goal < 15%)")
    return result


if __name__ == "__main__":
    main()
