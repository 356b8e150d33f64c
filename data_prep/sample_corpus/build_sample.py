"""Rebuild the built-in sample corpus from Debian's Asterisk English prompts (CC BY-SA 3.0,
voice of Allison Smith). A maintainer tool: never run at install or test time.

Needs a Debian/Ubuntu machine with `apt-get`, `dpkg-deb` and `ffmpeg` (for the G.722 decoder):

    apt-get update && apt-get install -y ffmpeg
    python -m data_prep.sample_corpus.build_sample

Writes `LibriTTS/sample/9000/1/<utt>.wav` (16 kHz mono 16-bit) + `.original.txt` (the prompt
text) + `.normalized.txt` (`normalize_text` of it) next to this file, replacing what was there.
`--all --out DIR` writes every prompt of at least three words without bracketed notes (about 500
utterances, 40 minutes of one voice) in the same layout, as subset `all`: a larger corpus with texts for
TTS experiments such as checking the MobileSpeech aligner on held-out utterances.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import tempfile
from pathlib import Path

from data_prep.text.normalize import normalize_text

PACKAGES = ("asterisk-core-sounds-en-g722", "asterisk-core-sounds-en")
SOUNDS = "usr/share/asterisk/sounds/en_US_f_Allison"
TEXTS = "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
SPEAKER, CHAPTER, SUBSET = "9000", "1", "sample"
# Longer full-sentence prompts (2-6 s), several with digits, none with bracketed notes.
PROMPTS = (
    "demo-thanks", "agent-alreadyon", "followme/options", "followme/status", "invalid",
    "pbx-invalidpark", "priv-introsaved", "privacy-prompt", "privacy-unident", "queue-youarenext",
    "ss-noservice", "tt-weasels", "tt-monkeysintro", "vm-forward-multiple", "vm-toforward",
    "vm-invalid-password", "vm-mismatch", "vm-rec-temp", "vm-tmpexists", "confbridge-pin-bad",
)


def prompt_texts(path: Path) -> dict[str, str]:
    """`name: text` lines of core-sounds-en.txt(.gz) -> {name: text}."""
    texts = {}
    for line in gzip.open(path, "rt", encoding="utf-8"):
        name, sep, text = line.partition(":")
        if sep and not line.startswith(";"):
            texts[name.strip()] = text.strip()
    return texts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "LibriTTS")
    parser.add_argument("--all", action="store_true", help="every usable prompt, as subset `all`")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run(["apt-get", "download", *PACKAGES], cwd=work, check=True)
        for deb in work.glob("*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "root")], check=True)
        texts = prompt_texts(work / "root" / TEXTS)
        prompts, subset = PROMPTS, SUBSET
        if args.all:
            prompts = tuple(sorted(n for n, t in texts.items() if len(t.split()) >= 3 and not set("[]()<>") & set(t)
                                   and (work / "root" / SOUNDS / f"{n}.g722").exists()))
            subset = "all"

        chapter = args.out / subset / SPEAKER / CHAPTER
        if args.out.exists():
            shutil.rmtree(args.out)
        chapter.mkdir(parents=True)
        for n, name in enumerate(prompts, 1):
            utt = f"{SPEAKER}_{CHAPTER}_{n:06d}_000000"
            source = work / "root" / SOUNDS / f"{name}.g722"
            subprocess.run(
                ["ffmpeg", "-loglevel", "error", "-f", "g722", "-i", str(source),
                 "-ar", "16000", "-ac", "1", "-c:a", "pcm_s16le", str(chapter / f"{utt}.wav")],
                check=True,
            )
            text = texts[name]
            (chapter / f"{utt}.original.txt").write_text(text + "\n", encoding="utf-8")
            (chapter / f"{utt}.normalized.txt").write_text(normalize_text(text) + "\n", encoding="utf-8")
            print(f"| {utt} | {name} | {text} |")


if __name__ == "__main__":
    main()
