"""Speaker similarity: cosine similarity of speaker embeddings, with two backends.

- `resemblyzer` (default, offline): the GE2E speaker encoder (Wan et al. 2018) whose weights ship in
  the `resemblyzer` wheel; 256-d embeddings of the clip at 16 kHz after its own preprocessing
  (volume normalisation, webrtcvad silence trimming). Install with `pip install --no-deps
  resemblyzer webrtcvad-wheels`.
- `wavlm` / `wavlm:PATH_OR_ID`: the protocol of the VALL-E-style papers, WavLM with an x-vector head
  (transformers `WavLMForXVector`, default `microsoft/wavlm-base-plus-sv`, the speaker-verification
  checkpoint available through transformers; the papers' WavLM-Large TDNN comes from UniSpeech and
  is not loadable here). Needs the weights locally or hub access.

The backend name is recorded next to every similarity (column `spk_backend`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from abc import ABC, abstractmethod

import numpy as np

from tokenizer.audio import resample
from tokenizer.utils.errors import CodecError
from .asr import hf_protocol, package_versions
from .deps import load_hf, require

SPEAKER_SR = 16000


class SpeakerEncoder(ABC):
    """`embed(audio (T,), sampling_rate) -> unit-norm embedding (D,)`; `name` identifies the protocol."""

    name: str

    @abstractmethod
    def embed(self, audio: np.ndarray, sampling_rate: int) -> np.ndarray:
        ...

    def protocol(self) -> dict:
        """{"name", "packages", "weights": [files]} as `evaluation.asr.ASRBackend.protocol` (only `name` when
        unknown)."""
        return {"name": self.name}

    def similarity(self, a: np.ndarray, b: np.ndarray, sampling_rate: int, sampling_rate_b: int | None = None) -> float:
        """Cosine similarity in [-1, 1] of the embeddings of clips `a` and `b`."""
        ea = self.embed(a, sampling_rate)
        eb = self.embed(b, sampling_rate if sampling_rate_b is None else sampling_rate_b)
        return float(np.dot(ea, eb) / max(np.linalg.norm(ea) * np.linalg.norm(eb), 1e-12))


def _at16k(audio: np.ndarray, sampling_rate: int) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if x.size == 0:
        raise CodecError("cannot embed empty audio")
    return resample(x, sampling_rate, SPEAKER_SR)


class ResemblyzerEncoder(SpeakerEncoder):
    """GE2E encoder from the resemblyzer wheel (CPU)."""

    name = "resemblyzer"

    def __init__(self, device: str = "cpu"):
        require("webrtcvad")
        self._resemblyzer = require("resemblyzer")
        self.encoder = self._resemblyzer.VoiceEncoder(device, verbose=False)

    def protocol(self) -> dict:
        weights = Path(self._resemblyzer.__file__).parent / "pretrained.pt"  # what VoiceEncoder loads
        return {"name": self.name, "packages": package_versions("resemblyzer", "webrtcvad-wheels", "librosa"),
                "weights": [str(weights)]}

    def embed(self, audio: np.ndarray, sampling_rate: int) -> np.ndarray:
        x = _at16k(audio, sampling_rate)
        wav = self._resemblyzer.preprocess_wav(x)  # already at its 16 kHz: volume + VAD trimming only
        if len(wav) < SPEAKER_SR // 2:
            # Voice-activity trimming left under 0.5 s (short or unvoiced clip): embed it untrimmed.
            audio_mod = self._resemblyzer.audio
            wav = audio_mod.normalize_volume(x, audio_mod.audio_norm_target_dBFS, increase_only=True)
        return np.asarray(self.encoder.embed_utterance(wav), dtype=np.float32)


class WavLMXVectorEncoder(SpeakerEncoder):
    """WavLM + x-vector head (transformers `WavLMForXVector` and its feature extractor)."""

    DEFAULT = "microsoft/wavlm-base-plus-sv"

    def __init__(self, name_or_path: str | os.PathLike = DEFAULT, device: str = "cpu"):
        self.extractor, model = load_hf("WavLM x-vector model", name_or_path, "AutoFeatureExtractor",
                                        "WavLMForXVector")
        self.model = model.eval().to(device)
        self.device = device
        self.name = f"wavlm-xvector:{name_or_path}"
        self._protocol = hf_protocol(self.name, name_or_path, model)

    def protocol(self) -> dict:
        return self._protocol

    def embed(self, audio: np.ndarray, sampling_rate: int) -> np.ndarray:
        import torch

        inputs = self.extractor(_at16k(audio, sampling_rate), sampling_rate=SPEAKER_SR, return_tensors="pt")
        with torch.inference_mode():
            emb = self.model(inputs["input_values"].to(self.device)).embeddings[0]
        return torch.nn.functional.normalize(emb, dim=-1).cpu().numpy()


@functools.lru_cache(maxsize=4)
def get_speaker_encoder(spec: str = "resemblyzer") -> SpeakerEncoder:
    """`resemblyzer`, `wavlm` or `wavlm:PATH_OR_ID` -> a (cached) encoder."""
    kind, _, arg = str(spec).partition(":")
    kind = kind.strip().lower()
    if kind == "resemblyzer":
        return ResemblyzerEncoder()
    if kind == "wavlm":
        return WavLMXVectorEncoder(arg or WavLMXVectorEncoder.DEFAULT)
    raise CodecError(f"unknown speaker backend {spec!r}; use resemblyzer, wavlm or wavlm:PATH_OR_ID")
