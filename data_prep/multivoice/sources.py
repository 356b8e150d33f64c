"""What the multi-voice corpus is made of: real recordings cut into clips with texts, and the sentences
the synthetic voices read.

- LibriSpeech-mini (`<speaker>-<chapter>-<utterance>.flac`, no transcripts): each file is transcribed
  (a `Transcriber`, Whisper by default) and cut at its segment boundaries (a file that gives a single
  segment is cut once more, at its longest word pause, when both parts last `SPLIT_SECONDS`); segments shorter than
  `min_seconds` or without text are dropped with the reason. Transcripts are cached per file, so a
  resumed build transcribes nothing twice. Clips longer than `max_seconds` are dropped too.
- Asterisk English prompts (Debian `asterisk-core-sounds-en-g722` + `asterisk-core-sounds-en`, one
  speaker, verbatim texts): fetched with `apt-get download`, unpacked with `dpkg-deb -x`, G.722 decoded
  to 16 kHz WAV with ffmpeg, all cached. Prompts with fewer than three words or bracketed notes
  ("[beep]") are left out, as in `data_prep.sample_corpus.build_sample --all`, and so are recordings
  outside [`min_seconds`, `max_seconds`] (a 73 s menu is no sentence); the texts of those left out do not
  enter the sentence pool either, which keeps the synthetic utterances of sentence length too.
- Sentences: the kept Asterisk prompt texts plus the lines of any `--texts` files, normalised by
  `data_prep.text.normalize.normalize_text`, repeated texts (same normalised text) kept once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from tqdm.auto import tqdm

from tokenizer.audio import audio_info, load_mono
from tokenizer.utils.errors import AudioError

from ..errors import CorpusError
from ..sample_corpus.build_sample import PACKAGES, SOUNDS, TEXTS, prompt_texts
from ..text.normalize import normalize_text
from .whisper import Segment, Transcriber, cut_points, split_in_two

LIBRISPEECH_NAME = re.compile(r"^(\d+)-(\d+)-(\d+)$")
ASTERISK_SPEAKER = "asterisk-allison"
CACHE_VERSION = 2  # transcripts with word times
# A recording Whisper keeps in one segment is cut in two at a word pause when both parts last this long
# (seconds): its speaker then has a second utterance for a 3 s cross-sentence prompt.
SPLIT_SECONDS = 3.0
VERBATIM = "verbatim"


def automatic(name: str) -> str:
    """The `text_source` of a transcript made by the recogniser `name`."""
    return f"automatic ({name})"


@dataclass(frozen=True)
class Clip:
    """A stretch of a real recording and its text.

    audio: path of the source file; start, end: seconds within it; key: `<utterance>_<segment>` for the id;
    text_source: `verbatim` or `automatic (<recogniser>)`.
    """

    speaker: str
    chapter: str
    key: str
    audio: str
    start: float
    end: float
    text: str
    text_source: str
    source: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Sentence:
    """A text for the synthetic voices: as given (`original`), as spoken (`normalized`), and where from."""

    original: str
    normalized: str
    source: str


@dataclass(frozen=True)
class Dropped:
    """Something left out of the corpus and why."""

    item: str
    reason: str


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def librispeech_clips(root: Path, transcriber: Transcriber, cache: Path, min_seconds: float, max_seconds: float,
                      progress: bool = True) -> tuple[list[Clip], list[Dropped]]:
    """Transcribe every `<speaker>-<chapter>-<utterance>.flac|.wav` in `root` and cut it at its segments.

    Returns the clips (sorted by file, then time) and what was dropped. The transcripts are cached in
    `cache/whisper/<file stem>.json` under the transcriber's `name`.
    """
    if not root.is_dir():
        raise CorpusError(f"real-speech folder {root} does not exist or is not a folder "
                          "(expected <speaker>-<chapter>-<utterance>.flac files; --no-real builds without)")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in (".flac", ".wav"))
    if not files:
        raise CorpusError(f"no .flac or .wav files in the real-speech folder {root}")
    name = getattr(transcriber, "name", type(transcriber).__name__)
    (cache / "whisper").mkdir(parents=True, exist_ok=True)
    clips, dropped = [], []
    for path in tqdm(files, desc="transcribe", unit="file", disable=not progress):
        match = LIBRISPEECH_NAME.match(path.stem)
        if not match:
            dropped.append(Dropped(path.name, "file name is not <speaker>-<chapter>-<utterance>"))
            continue
        speaker, chapter, utterance = match.groups()
        cached = cache / "whisper" / f"{path.stem}.json"
        record = json.loads(cached.read_text(encoding="utf-8")) if cached.is_file() else {}
        try:
            audio, sr = load_mono(path)
        except AudioError as exc:
            raise CorpusError(f"unreadable real-speech file: {exc}") from exc
        if record.get("transcriber") != name or record.get("version") != CACHE_VERSION:
            segments = transcriber(audio, sr)
            record = {"transcriber": name, "version": CACHE_VERSION,
                      "segments": [[s.start, s.end, s.text, [list(w) for w in s.words]] for s in segments]}
            _write_json(cached, record)
        segments = [Segment(a, b, text, tuple(map(tuple, words))) for a, b, text, words in record["segments"]]
        if not segments:
            dropped.append(Dropped(path.name, "no speech recognised"))
        if len([s for s in segments if s.text.strip()]) == 1:
            segments = [part for s in segments for part in (split_in_two(s, SPLIT_SECONDS) if s.text.strip() else [s])]
        for i, (seg, (start, end)) in enumerate(zip(segments, cut_points(segments, audio, sr))):
            item = f"{path.name} segment {i} ({start:.2f}-{end:.2f} s)"
            if not seg.text.strip():
                dropped.append(Dropped(item, "no text recognised"))
            elif end - start < min_seconds:
                dropped.append(Dropped(item, f"shorter than {min_seconds:g} s"))
            elif end - start > max_seconds:
                dropped.append(Dropped(item, f"longer than {max_seconds:g} s"))
            else:
                clips.append(Clip(speaker, chapter, f"{int(utterance):06d}_{i:06d}", str(path), round(start, 3),
                                  round(end, 3), seg.text.strip(), automatic(name), "librispeech-mini"))
    return clips, dropped


def _fetch_asterisk(work: Path) -> Path:
    """Unpack the two Debian packages into `work/root` (once) and return that folder."""
    root = work / "root"
    if (root / TEXTS).is_file() and (root / SOUNDS).is_dir():
        return root
    for tool in ("apt-get", "dpkg-deb"):
        if not shutil.which(tool):
            raise CorpusError(f"the Asterisk prompts need {tool} (a Debian system); --no-asterisk builds without")
    debs = work / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["apt-get", "download", *PACKAGES], cwd=debs, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise CorpusError(f"apt-get download {' '.join(PACKAGES)} failed: {tail} "
                          "(run apt-get update, or --no-asterisk to build without)")
    partial = work / "root.partial"
    shutil.rmtree(partial, ignore_errors=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], check=True, capture_output=True)
    shutil.rmtree(root, ignore_errors=True)
    os.replace(partial, root)
    return root


def asterisk_clips(cache: Path, min_seconds: float, max_seconds: float, progress: bool = True
                   ) -> tuple[list[Clip], list[tuple[str, str]], list[Dropped]]:
    """The English Asterisk prompts as clips (one speaker, verbatim texts), the texts of those clips as
    `(asterisk:<prompt name>, text)` for the sentence pool, and what was dropped. Decoded WAVs are cached."""
    if not shutil.which("ffmpeg"):
        raise CorpusError("the Asterisk prompts need ffmpeg for G.722 (apt-get install ffmpeg); "
                          "--no-asterisk builds without")
    root = _fetch_asterisk(cache / "asterisk")
    # One level under the cache, not two: `<cache>/<x>/<y>/*.wav` would look like a LibriTTS subset.
    wavs = cache / "asterisk-wav"
    wavs.mkdir(parents=True, exist_ok=True)
    clips, kept, dropped = [], [], []
    for name, text in tqdm(sorted(prompt_texts(root / TEXTS).items()), desc="asterisk", unit="prompt",
                           disable=not progress):
        g722 = root / SOUNDS / f"{name}.g722"
        if len(text.split()) < 3:
            dropped.append(Dropped(f"asterisk {name}", "fewer than three words"))
            continue
        if set("[]()<>") & set(text):
            dropped.append(Dropped(f"asterisk {name}", "bracketed note in the text"))
            continue
        if not g722.is_file():
            dropped.append(Dropped(f"asterisk {name}", "no recording in the package"))
            continue
        wav = wavs / (name.replace("/", "__") + ".wav")
        if not wav.is_file():
            tmp = wav.with_name(wav.name + ".partial")
            proc = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "g722", "-i", str(g722),
                                   "-ar", "16000", "-ac", "1", "-c:a", "pcm_s16le", "-f", "wav", str(tmp)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise CorpusError(f"ffmpeg could not decode {g722}: {proc.stderr.strip()[-200:]}")
            os.replace(tmp, wav)
        duration = audio_info(wav)[0]
        if not min_seconds <= duration <= max_seconds:
            dropped.append(Dropped(f"asterisk {name}", f"{'shorter' if duration < min_seconds else 'longer'} than "
                                   f"{min_seconds if duration < min_seconds else max_seconds:g} s"))
            continue
        clips.append(Clip(ASTERISK_SPEAKER, "1", f"{len(clips):06d}_000000", str(wav), 0.0, round(duration, 3),
                          text, VERBATIM, "asterisk"))
        kept.append((f"asterisk:{name}", text))
    return clips, kept, dropped


def read_text_lines(paths: Iterable[Path]) -> list[tuple[str, str]]:
    """`(label, text)` for each non-empty line not starting with `#` of each UTF-8 file."""
    texts = []
    for path in paths:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise CorpusError(f"cannot read the text file {path}: {exc}") from exc
        texts += [(f"{Path(path).name}:{n}", line.strip()) for n, line in enumerate(lines, 1)
                  if line.strip() and not line.lstrip().startswith("#")]
    return texts


def sentence_pool(texts: Iterable[tuple[str, str]]) -> tuple[list[Sentence], list[Dropped]]:
    """Normalise `(label, text)` pairs and keep the first of each normalised text (case-insensitive)."""
    pool, seen, dropped = [], set(), []
    for label, text in texts:
        normalized = normalize_text(text)
        key = " ".join(normalized.lower().split())
        if key in seen:
            dropped.append(Dropped(f"sentence {label}", "same text as an earlier sentence"))
            continue
        seen.add(key)
        pool.append(Sentence(text, normalized, label))
    return pool, dropped
