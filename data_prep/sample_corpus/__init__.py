"""A tiny LibriTTS-layout corpus shipped with the package (see README.md here for its source,
licence and how it was built)."""

from pathlib import Path

SAMPLE_ROOT = Path(__file__).resolve().parent / "LibriTTS"
"""`<SAMPLE_ROOT>/sample/9000/1/<utt>.wav` + `.original.txt` + `.normalized.txt`."""
