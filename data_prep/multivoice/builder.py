"""`build_multivoice_corpus`: real and synthetic English voices -> a LibriTTS-layout corpus with a split.

    <out>/<subset>/<speaker>/<chapter>/<id>.wav            16 kHz mono 16-bit PCM (by default)
    <out>/<subset>/<speaker>/<chapter>/<id>.original.txt   the text as given (prompt, sentence or Whisper's)
    <out>/<subset>/<speaker>/<chapter>/<id>.normalized.txt normalize_text(original): what a synthetic voice read
    <out>/split.json                                        the builder's record (below)
    <out>/ATTRIBUTION.md                                    sources and licences
    <out>/.cache/                                           transcripts, Asterisk packages and decoded prompts

`tokenize-corpus libritts --root <out>` reads it (`--subsets train` for training only). Subsets and the
way voices and sentences are held out: `data_prep.multivoice.split`.

`split.json` records the options, the engines and voices used and skipped (with the reason), the sources
(with the recogniser's settings), the held-out voices and sentences, per-utterance facts (subset, speaker,
source, `text_source`: `verbatim`, `synthesis input` or `automatic (<recogniser>)`, duration, engine and
voice or the cut of the source file), counts and hours per subset and source, and everything dropped with
the reason. `"complete": false` until the last file is written.

Resuming: each utterance's texts, then its audio, are written to `.partial` names and renamed, so a file
under its final name is complete; a re-run with the same options skips those and writes only the rest.
A re-run whose plan differs (other options, another engine installed since) is refused, naming what
differs, so one folder never mixes two splits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from tokenizer.audio import audio_info, load_mono, resample
from tokenizer.utils.errors import AudioError

from ..corpora import get_corpus
from ..errors import CorpusError
from .engines import ENGINES, get_engine
from .sources import Dropped, asterisk_clips, librispeech_clips, read_text_lines, sentence_pool
from .split import HELD_OUT_LIBRISPEECH, SUBSETS, Item, Voice, plan_split
from .whisper import Transcriber, WhisperSegments

logger = logging.getLogger(__name__)

FORMAT, VERSION = "multivoice-corpus", 1
# The repository's sibling `shared/data/librispeech-mini` (251 speakers, one utterance each).
DEFAULT_REAL_ROOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "librispeech-mini"
MIN_SYNTHETIC_SECONDS = 0.3  # shorter output means the engine failed quietly (festival with a broken voice)
ATTRIBUTION = """# Sources and licences

- `librispeech-mini` speakers: LibriSpeech (Panayotov et al., 2015), CC BY 4.0. Cut at Whisper segment
  boundaries; their texts are automatic transcripts (see `text_source` in split.json).
- `asterisk-allison`: Asterisk core sounds, US English, recorded by Allison Smith (Copyright 2003-2010
  Allison Smith; Digium, Inc.), CC BY-SA 3.0, as packaged by Debian (`asterisk-core-sounds-en-g722`,
  `asterisk-core-sounds-en`); G.722 decoded to PCM. Derived audio stays under CC BY-SA 3.0.
- Synthetic voices (espeak-ng, flite, festival, piper): the synthesizers' output of the sentences above.
"""


@dataclass
class BuildResult:
    """What a build did: `record` is the content of `split.json`; `written` / `reused` count utterances."""

    out: Path
    record: dict
    written: int
    reused: int


def _digest(items: Sequence[Item]) -> str:
    lines = "\n".join(f"{i.id}\t{i.subset}\t{i.normalized}\t{i.voice}\t{i.clip and (i.clip.start, i.clip.end)}"
                      for i in items)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()[:16]


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _atomic_wav(path: Path, audio: np.ndarray, sampling_rate: int) -> None:
    tmp = path.with_name(path.name + ".partial")
    sf.write(tmp, np.clip(audio, -1.0, 1.0), sampling_rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def _render(item: Item, sampling_rate: int, scratch: Path) -> np.ndarray:
    """The item's audio at `sampling_rate`, mono float32 (T,)."""
    if item.clip is not None:
        try:
            audio, sr = load_mono(item.clip.audio, sampling_rate)
        except AudioError as exc:
            raise CorpusError(f"unreadable source audio for {item.id}: {exc}") from exc
        return audio[int(round(item.clip.start * sr)): int(round(item.clip.end * sr))]
    voice = item.voice
    raw = scratch / f"{item.id}.engine.partial"
    try:
        ENGINES[voice.engine].synthesize(voice.voice, item.normalized, raw)
        try:
            audio, sr = load_mono(raw)
        except AudioError as exc:
            raise CorpusError(f"{voice.engine} voice {voice.voice} wrote no usable audio for {item.id}: {exc}") from exc
    finally:
        raw.unlink(missing_ok=True)
    if len(audio) < MIN_SYNTHETIC_SECONDS * sr:
        raise CorpusError(f"{voice.engine} voice {voice.voice} wrote {len(audio) / sr:.2f} s for "
                          f"{item.normalized!r} ({item.id}): the engine failed")
    return resample(audio, sr, sampling_rate)


def _probe_engines(names: Sequence[str]) -> tuple[list[Voice], dict[str, str], dict[str, str]]:
    """(usable voices, {engine: why skipped}, {"engine voice": why skipped})."""
    voices, skipped, skipped_voices = [], {}, {}
    for name in dict.fromkeys(names):
        engine = get_engine(name)
        reason = engine.missing()
        if reason:
            skipped[name] = reason
            logger.warning("skipping engine %s: %s", name, reason)
            continue
        for v in engine.voices:
            reason = engine.missing_voice(v)
            if reason:
                skipped_voices[f"{name} {v}"] = reason
                logger.warning("skipping %s voice %s: %s", name, v, reason)
            else:
                voices.append(Voice(engine.speaker(v), name, v))
    return voices, skipped, skipped_voices


def _counts(items: Sequence[Item], durations: dict[str, float]) -> dict:
    """{subset: {voices, utterances, hours, by_source: {source: {voices, utterances, hours}}}}."""
    out = {}
    for subset in SUBSETS:
        rows = [i for i in items if i.subset == subset]
        by_source = defaultdict(list)
        for i in rows:
            by_source[i.voice.engine if i.voice else i.source].append(i)

        def stats(group):
            return {"voices": len({i.speaker for i in group}), "utterances": len(group),
                    "hours": round(sum(durations[i.id] for i in group) / 3600, 4)}

        out[subset] = {**stats(rows), "by_source": {s: stats(g) for s, g in sorted(by_source.items())}}
    return out


def build_multivoice_corpus(
    out: str | os.PathLike,
    *,
    seed: int = 0,
    engines: Sequence[str] = tuple(ENGINES),
    real_root: str | os.PathLike | None = DEFAULT_REAL_ROOT,
    asterisk: bool = True,
    texts: Sequence[str | os.PathLike] = (),
    transcriber: Transcriber | None = None,
    train_sentences: int = 30,
    test_sentences: int = 10,
    held_out_synthetic: int = 4,
    held_out_real: Sequence[str] = HELD_OUT_LIBRISPEECH,
    min_seconds: float = 1.0,
    max_seconds: float = 20.0,
    sampling_rate: int = 16000,
    progress: bool = True,
) -> BuildResult:
    """Build (or finish) the corpus in `out`; see the module docstring for the layout and record.

    engines: synthesizer names (`ENGINES`); one not installed, or a voice it lacks, is skipped and recorded.
    real_root: LibriSpeech-style `<speaker>-<chapter>-<utterance>.flac` files without transcripts (None: none).
    asterisk: include the Debian Asterisk English prompts (speaker and sentences; needs apt-get and ffmpeg).
    texts: UTF-8 files of one sentence per line, added to the synthetic voices' sentence pool.
    transcriber: `(audio (T,), sampling_rate) -> [Segment]` for `real_root` (default: `WhisperSegments()`).
    train_sentences / test_sentences: sentences per synthetic voice (see `data_prep.multivoice.split`).
    min_seconds / max_seconds: real clips outside this range (seconds) are dropped; so are the texts of
        Asterisk prompts outside it, from the sentence pool.
    sampling_rate: of every written file, in Hz.
    Raises `CorpusError` for bad options, a missing source, an engine that fails, or an `out` built differently.
    """
    out = Path(out).expanduser()
    for name, value in (("train_sentences", train_sentences), ("test_sentences", test_sentences),
                        ("held_out_synthetic", held_out_synthetic)):
        if int(value) != value or value < 0:
            raise CorpusError(f"{name} must be a whole number >= 0, got {value!r}")
    if not 0 <= min_seconds < max_seconds:
        raise CorpusError(f"need 0 <= min_seconds < max_seconds, got {min_seconds!r} and {max_seconds!r}")
    if not 8000 <= sampling_rate <= 48000:
        raise CorpusError(f"sampling_rate must be 8000 to 48000 Hz, got {sampling_rate!r}")
    if out.exists() and not out.is_dir():
        raise CorpusError(f"--out {out} exists and is not a folder")
    cache = out / ".cache"
    cache.mkdir(parents=True, exist_ok=True)

    voices, skipped_engines, skipped_voices = _probe_engines(engines)
    dropped: list[Dropped] = []
    real, protocol = [], None
    if real_root is not None:
        if not Path(real_root).expanduser().is_dir():  # before loading Whisper for nothing
            raise CorpusError(f"real-speech folder {real_root} does not exist or is not a folder (expected "
                              "<speaker>-<chapter>-<utterance>.flac files; --no-real builds without)")
        transcriber = transcriber or WhisperSegments()
        protocol = transcriber.protocol() if hasattr(transcriber, "protocol") else {
            "name": getattr(transcriber, "name", type(transcriber).__name__)}
        real, lost = librispeech_clips(Path(real_root).expanduser(), transcriber, cache, min_seconds,
                                       max_seconds, progress)
        dropped += lost
    prompts, prompt_texts = [], []
    if asterisk:
        prompts, prompt_texts, lost = asterisk_clips(cache, min_seconds, max_seconds, progress)
        dropped += lost
    pool, lost = sentence_pool(prompt_texts + read_text_lines(Path(t) for t in texts))
    dropped += lost
    if voices and len(pool) < 2:
        raise CorpusError(f"{len(pool)} sentence(s) for the synthetic voices: give --texts FILE (one sentence a "
                          "line) or keep the Asterisk prompts")
    if not (voices or real or prompts):
        raise CorpusError("nothing to build: no synthesis engine is installed "
                          f"({'; '.join(skipped_engines.values()) or 'none asked for'}) and no real speech was given")

    plan = plan_split(pool, voices, real, prompts, seed, train_sentences, test_sentences, held_out_synthetic,
                      tuple(held_out_real))
    options = {"seed": seed, "engines": list(dict.fromkeys(engines)), "real_root": str(real_root) if real_root else None,
               "asterisk": asterisk, "texts": [str(t) for t in texts], "train_sentences": train_sentences,
               "test_sentences": test_sentences, "held_out_synthetic": held_out_synthetic,
               "held_out_real": list(held_out_real), "min_seconds": min_seconds, "max_seconds": max_seconds,
               "sampling_rate": sampling_rate}
    record_path = out / "split.json"
    record = {"format": FORMAT, "version": VERSION, "complete": False, "options": options,
              "plan_digest": _digest(plan.items),
              "voices_used": sorted(v.speaker for v in voices)}
    if record_path.is_file():
        old = json.loads(record_path.read_text(encoding="utf-8"))
        before = old.get("options") or {}
        differs = [f"{k}={before.get(k)!r} (now {v!r})" for k, v in options.items() if before.get(k) != v]
        if not differs and old.get("voices_used") != record["voices_used"]:
            gone, new = (sorted(set(a) - set(b)) for a, b in ((old.get("voices_used") or [], record["voices_used"]),
                                                              (record["voices_used"], old.get("voices_used") or [])))
            differs = [f"voices {gone} that are not usable now" if gone else f"no voices {new}"]
        if not differs and old.get("plan_digest") != record["plan_digest"]:
            differs = ["other sources (the real-speech folder, the prompts or the text files changed)"]
        if differs:
            raise CorpusError(f"{out} was built with {'; '.join(differs)}: re-run with the same options and "
                              "engines, or build into a new --out")
    _atomic_text(record_path, json.dumps(record, indent=1))

    written = reused = 0
    durations: dict[str, float] = {}
    for item in tqdm(plan.items, desc="build", unit="utt", disable=not progress):
        folder = out / item.subset / item.speaker / item.chapter
        wav, original, normalized = (folder / f"{item.id}{s}" for s in (".wav", ".original.txt", ".normalized.txt"))
        if wav.is_file() and original.is_file() and normalized.is_file():
            durations[item.id] = audio_info(wav)[0]
            reused += 1
            continue
        folder.mkdir(parents=True, exist_ok=True)
        audio = _render(item, sampling_rate, folder)
        _atomic_text(original, item.original)
        _atomic_text(normalized, item.normalized)
        _atomic_wav(wav, audio, sampling_rate)  # last: a wav under its final name means a finished item
        durations[item.id] = len(audio) / sampling_rate
        written += 1

    utterances = {}
    for i in plan.items:
        entry = {"subset": i.subset, "speaker": i.speaker, "source": i.source, "text_source": i.text_source,
                 "duration": round(durations[i.id], 3)}
        if i.voice:
            entry.update(engine=i.voice.engine, voice=i.voice.voice, sentence=i.sentence)
        else:
            entry.update(origin=Path(i.clip.audio).name, start=i.clip.start, end=i.clip.end)
        utterances[i.id] = entry
    voice_table = {}
    engine_of = {v.speaker: v for v in voices}
    for i in plan.items:
        v = voice_table.setdefault(i.speaker, {
            "source": i.voice.engine if i.voice else i.source, "voice": i.voice.voice if i.voice else None,
            "held_out": i.speaker in plan.held_out_voices, "utterances": Counter()})
        v["utterances"][i.subset] += 1
    single = sorted(s for s, v in voice_table.items() if sum(v["utterances"].values()) < 2)
    if single:
        plan.notes.append(f"{len(single)} voice(s) with a single utterance (no cross-sentence prompt): {', '.join(single)}")
    record.update({
        "complete": True,
        "subsets": SUBSETS,
        "engines": {"used": sorted({v.engine for v in engine_of.values()}),
                    "skipped": skipped_engines, "skipped_voices": skipped_voices},
        "sources": {"librispeech-mini": {"root": options["real_root"], "clips": len(real), "transcriber": protocol,
                                         "texts": "automatic" if real else None},
                    "asterisk": {"clips": len(prompts), "texts": "verbatim"} if asterisk else None,
                    "sentences": {"pool": len(pool), "held_out": len(plan.held_out_sentences),
                                  "from": sorted({s.source.split(":")[0] for s in pool})}},
        "held_out_voices": plan.held_out_voices,
        "held_out_sentences": [pool[i].normalized for i in plan.held_out_sentences],
        "voices": {s: {**v, "utterances": dict(v["utterances"])} for s, v in sorted(voice_table.items())},
        "counts": _counts(plan.items, durations),
        "dropped": {"by_reason": dict(Counter(d.reason for d in dropped)), "items": [vars(d) for d in dropped]},
        "notes": plan.notes,
        "utterances": utterances,
    })
    seen = get_corpus("libritts", root=out).subsets
    if sorted(seen) != sorted({i.subset for i in plan.items}):
        raise CorpusError(f"the libritts reader sees subsets {seen} in {out}, not the {sorted(SUBSETS)} written: "
                          "move the other folders out")
    _atomic_text(record_path, json.dumps(record, indent=1))
    _atomic_text(out / "ATTRIBUTION.md", ATTRIBUTION.strip())
    return BuildResult(out, record, written, reused)
