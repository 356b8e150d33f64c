"""Zero-shot synthesis with a trained TTS export: text + prompt audio -> speech, batched.

    synth = Synthesizer.from_pretrained("runs/valle/final")         # loads the codec the export records
    audio = synth.synthesize([Request("Hello there.", "p.wav", "Transcript of p.")])[0]   # float32 (T,)

Modes (VALL-E protocol):
- `cross-sentence` (default): the prompt is another utterance with its transcript (`prompt_text`); the
  model reads `prompt_text` + `text` and continues the prompt's codes; the output is the new sentence only
  (the prompt's frames are cut exactly, so nothing of the prompt leaks into it).
- `continuation`: `text` is the whole transcript and the prompt is the first `prompt_seconds` of the same
  utterance; the output is the prompt (codec resynthesis) followed by the generated rest, so that its
  transcript is the whole text.

The prompt is encoded with the codec the model was trained on: the export's config records its name,
config hash and weights digest; a codec with another hash or digest is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data_prep.text.vocab import PhonemeVocab
from tokenizer.audio import load_mono

from .codec import load_codec
from .errors import TTSError
from .generation import GenerationConfig
from .registry import load_model
from .text import TextFrontend

logger = logging.getLogger(__name__)

MODES = ("cross-sentence", "continuation")


@dataclass
class Request:
    """One sentence to say: `text`, the prompt audio file and (cross-sentence) its transcript."""

    text: str
    prompt_audio: str | Path
    prompt_text: str | None = None
    mode: str = "cross-sentence"
    id: str = ""


def load_codec_for(model, codec: str | None = None, where: str = "model"):
    """The codec the model's tokens come from (`codec` overrides where to load it from); TTSError when the
    export records none or the loaded codec differs (config hash or weights digest)."""
    return load_codec(model.config.check_codec_record(where), codec, where)


class Synthesizer:
    """A TTS model, its codec and its text front-end."""

    def __init__(self, model, codec, where: str = "model"):
        self.model, self.codec, self.where = model, codec, where
        tokens = model.config.phoneme_tokens
        if not tokens:
            raise TTSError(f"{where} records no phoneme vocabulary")
        self.frontend = TextFrontend(PhonemeVocab(tokens), model.config.language)
        self.num_quantizers = int(model.config.num_quantizers)

    @classmethod
    def from_pretrained(cls, export_dir: str | Path, codec: str | None = None, device: str = "cpu") -> "Synthesizer":
        model = load_model(export_dir).to(device)
        return cls(model, load_codec_for(model, codec, str(export_dir)).to(device), str(export_dir))

    @property
    def sampling_rate(self) -> int:
        return self.codec.sampling_rate

    def prepare(self, req: Request, prompt_seconds: float = 3.0) -> tuple[list[int], torch.Tensor, int]:
        """(phoneme ids of the whole text, prompt codes (K, Fp), phonemes of the text to say); TTSError or
        CodecError (naming the file or the text) for bad input."""
        if req.mode not in MODES:
            raise TTSError(f"mode {req.mode!r} not one of {', '.join(MODES)}")
        if req.prompt_audio is None or str(req.prompt_audio) == "":
            raise TTSError("no prompt audio given")
        audio, _ = load_mono(str(req.prompt_audio), self.codec.sampling_rate)
        if req.mode == "continuation":
            audio = audio[: max(1, int(prompt_seconds * self.codec.sampling_rate))]
            text_ids = self.frontend.encode([req.text])[0]
            phonemes, target = text_ids, len(text_ids)
        else:
            if not req.prompt_text or not req.prompt_text.strip():
                raise TTSError(f"cross-sentence mode needs the prompt's transcript (prompt text) for "
                               f"{req.prompt_audio}")
            prompt_ids, text_ids = self.frontend.encode([req.prompt_text, req.text])
            phonemes, target = self.frontend.join(prompt_ids, text_ids), len(text_ids)
        seconds = len(audio) / self.codec.sampling_rate
        limit = self.model.config.max_frames / self.model.config.frame_rate
        if seconds >= limit:
            raise TTSError(f"prompt {req.prompt_audio} is {seconds:.1f} s, longer than the model's context of "
                           f"{self.model.config.max_frames} frames ({limit:.1f} s)")
        codes = self.codec(audio, sampling_rate=self.codec.sampling_rate, num_quantizers=self.num_quantizers)[0]
        return phonemes, codes, target

    def synthesize(self, requests: list[Request], config: GenerationConfig | None = None,
                   prompt_seconds: float = 3.0) -> list[np.ndarray]:
        """Audio float32 (T,) at `sampling_rate` per request, generated in one batch. Bad input raises."""
        prepared = [self.prepare(r, prompt_seconds) for r in requests]
        return self.synthesize_prepared(requests, prepared, config)

    def synthesize_prepared(self, requests, prepared, config: GenerationConfig | None = None) -> list[np.ndarray]:
        codes = self.model.generate([p[0] for p in prepared], [p[1] for p in prepared], [p[2] for p in prepared],
                                    config)
        out = []
        for req, (_, prompt, _), new in zip(requests, prepared, codes):
            full = torch.cat([prompt, new], dim=-1) if req.mode == "continuation" else new
            if full.shape[-1] == 0:
                out.append(np.zeros(0, dtype=np.float32))
                continue
            out.append(self.codec.batch_decode(full[None])[0])
        return out
