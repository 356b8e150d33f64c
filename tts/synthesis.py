"""Zero-shot synthesis with a trained TTS export: text + prompt audio -> speech, batched.

    synth = Synthesizer.from_pretrained("runs/valle/final")         # loads the codec the export records
    audio = synth.synthesize([Request("Hello there.", "p.wav", "Transcript of p.")])[0]   # float32 (T,)

Modes (VALL-E protocol):
- `cross-sentence` (default): the prompt is another utterance with its transcript (`prompt_text`); the
  model reads `prompt_text` + `text` and continues the prompt's codes; the output is the new sentence only
  (the prompt's frames are cut exactly, so nothing of the prompt leaks into it).
- `continuation`: `text` is the whole transcript and the prompt is the first `prompt_seconds` (rounded up to
  whole frames) of the same utterance's codes, encoded whole and cut; the output is the prompt (codec
  resynthesis) followed by the generated rest, so that its transcript is the whole text.

The prompt is encoded with the codec the model was trained on: the export's config records its name,
config hash and weights digest; a codec with another hash or digest is refused.

`synthesize_outputs` returns each sentence as a `SynthesisOutput` (audio + where its prompt part ends), and
`write_output` saves it as `<name>.wav` with the record `<name>.wav.json` beside it, which `evaluate-tts`
reads to score only the generated part (format in `evaluation/evaluate_tts.py`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from data_prep.text.vocab import PhonemeVocab
from tokenizer.audio import load_mono

from .codec import load_codec
from .errors import TTSError
from .generation import GenerationConfig
from .registry import export_digest, load_model
from .text import TextFrontend

logger = logging.getLogger(__name__)

MODES = ("cross-sentence", "continuation")
RECORD_VERSION = 1
# the shortest a phoneme is taken to last (20 phonemes/s; natural speech is about 12-15): a text that needs
# more frames than the context leaves even at that rate would be cut or squeezed, so it is refused
MIN_SECONDS_PER_PHONEME = 0.05


@dataclass
class Request:
    """One sentence to say: `text`, the prompt audio file and (cross-sentence) its transcript."""

    text: str
    prompt_audio: str | Path
    prompt_text: str | None = None
    mode: str = "cross-sentence"
    id: str = ""


class Prepared(NamedTuple):
    """One request ready for the model (`prepare`)."""

    phonemes: list[int]  # phoneme ids of what the model reads (prompt text + text, or the whole text)
    codes: torch.Tensor  # LongTensor (K, Fp): the prompt's codes
    target: int  # number of phonemes of the text to say
    prompt_input_samples: int  # samples (at the codec's rate) of the prompt file the codec encoded


@dataclass
class SynthesisOutput:
    """One synthesized sentence: `audio` float32 (T,) at `sampling_rate` Hz, of which the first
    `prompt_samples` are the prompt's codec resynthesis (continuation; 0 in cross-sentence mode).
    `prompt_input_samples` is how much of the prompt file the model was given (at `sampling_rate`)."""

    audio: np.ndarray
    sampling_rate: int
    mode: str
    prompt_samples: int
    prompt_input_samples: int
    model: dict | None = None  # {"path", "digest"} of the export that made it (`export_digest`)
    at_context: bool = False  # generation filled the model's whole context (the speech may be cut)

    def record(self, req: Request, audio_sha256: str | None = None) -> dict:
        """The JSON record `write_output` puts beside the WAV (what `evaluate-tts` needs to score it, and the
        provenance it keys its rows on: the model export, the text said and the digest of the WAV's bytes)."""
        return {"format_version": RECORD_VERSION, "id": req.id, "mode": self.mode,
                "sampling_rate": self.sampling_rate, "num_samples": len(self.audio),
                "prompt_samples": self.prompt_samples, "prompt_seconds": self.prompt_samples / self.sampling_rate,
                "prompt_audio": str(Path(req.prompt_audio).resolve()),
                "prompt_input_samples": self.prompt_input_samples,
                "prompt_input_seconds": self.prompt_input_samples / self.sampling_rate,
                "text": req.text, "prompt_text": req.prompt_text, "model": self.model,
                "at_context": self.at_context, "audio_sha256": audio_sha256}


def sha256_hex(data: bytes) -> str:
    """sha256 of `data`, 16 hex digits (the length of the project's other digests)."""
    return hashlib.sha256(data).hexdigest()[:16]


def write_output(path: str | Path, output: SynthesisOutput, req: Request) -> Path:
    """Write `output` to the WAV `path` and its record (`SynthesisOutput.record`, with the digest of the WAV's
    bytes) to `<path>.json`. Both go through a temporary file and a rename, the record first removed, so a
    killed run never leaves a WAV beside another output's record."""
    import io

    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    sf.write(buffer, output.audio, output.sampling_rate, format="WAV")
    data = buffer.getvalue()
    record_path = path.with_name(path.name + ".json")
    record_path.unlink(missing_ok=True)
    for target, payload in ((path, data), (record_path, (json.dumps(output.record(req, sha256_hex(data)))
                                                         + "\n").encode("utf-8"))):
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(payload)
        os.replace(tmp, target)
    return path


def load_codec_for(model, codec: str | None = None, where: str = "model"):
    """The codec the model's tokens come from (`codec` overrides where to load it from); TTSError when the
    export records none or the loaded codec differs (config hash or weights digest)."""
    return load_codec(model.config.check_codec_record(where), codec, where)


class Synthesizer:
    """A TTS model, its codec and its text front-end."""

    def __init__(self, model, codec, where: str = "model", model_record: dict | None = None):
        self.model, self.codec, self.where = model, codec, where
        self.model_record = model_record  # {"path", "digest"} of the export, recorded beside every output
        tokens = model.config.phoneme_tokens
        if not tokens:
            raise TTSError(f"{where} records no phoneme vocabulary")
        self.frontend = TextFrontend(PhonemeVocab(tokens), model.config.language)
        self.num_quantizers = int(model.config.num_quantizers)

    @classmethod
    def from_pretrained(cls, export_dir: str | Path, codec: str | None = None, device: str = "cpu") -> "Synthesizer":
        model = load_model(export_dir).to(device)
        record = {"path": str(Path(export_dir).resolve()), "digest": export_digest(export_dir)}
        return cls(model, load_codec_for(model, codec, str(export_dir)).to(device), str(export_dir), record)

    @property
    def sampling_rate(self) -> int:
        return self.codec.sampling_rate

    def prepare(self, req: Request, prompt_seconds: float = 3.0) -> Prepared:
        """The model's input for `req` (continuation: the first `prompt_seconds` of the prompt file); TTSError
        or CodecError (naming the file or the text) for bad input."""
        if req.mode not in MODES:
            raise TTSError(f"mode {req.mode!r} not one of {', '.join(MODES)}")
        if req.prompt_audio is None or str(req.prompt_audio) == "":
            raise TTSError("no prompt audio given")
        audio, _ = load_mono(str(req.prompt_audio), self.codec.sampling_rate)
        frames = None
        if req.mode == "continuation":
            # The prompt is the first frames of the utterance's codes (VALL-E's continuation), not the codes of
            # a cropped clip: the last frames of a crop are encoded against zero padding and differ from the
            # utterance's own (2-3 of 75 frames with the shipped codec), which a model then continues from a
            # context it never saw (measured: 3 of 5 sample sentences garbled from the crop, said from the cut).
            crop = max(1, int(prompt_seconds * self.codec.sampling_rate))
            frames = -(-min(crop, len(audio)) // self.codec.hop_length)
            text_ids = self.frontend.encode([req.text])[0]
            phonemes, target = text_ids, len(text_ids)
        else:
            if not req.prompt_text or not req.prompt_text.strip():
                raise TTSError(f"cross-sentence mode needs the prompt's transcript (prompt text) for "
                               f"{req.prompt_audio}")
            prompt_ids, text_ids = self.frontend.encode([req.prompt_text, req.text])
            phonemes, target = self.frontend.join(prompt_ids, text_ids), len(text_ids)
        given = len(audio) if frames is None else min(len(audio), frames * self.codec.hop_length)
        seconds = given / self.codec.sampling_rate
        limit = self.model.config.max_frames / self.model.config.frame_rate
        if seconds >= limit:
            raise TTSError(f"prompt {req.prompt_audio} is {seconds:.1f} s, longer than the model's context of "
                           f"{self.model.config.max_frames} frames ({limit:.1f} s)")
        codes = self.codec(audio, sampling_rate=self.codec.sampling_rate, num_quantizers=self.num_quantizers)[0]
        codes = codes if frames is None else codes[:, :frames]
        fr = float(self.model.config.frame_rate)
        needed = math.ceil(target * MIN_SECONDS_PER_PHONEME * fr)
        room = self.model.frames_available(codes.shape[-1])
        if needed > room:
            raise TTSError(f"text of {target} phonemes needs at least {needed} frames ({needed / fr:.1f} s at "
                           f"{1 / MIN_SECONDS_PER_PHONEME:.0f} phonemes/s), more than the {room} frames "
                           f"({room / fr:.1f} s) the model's context leaves after the prompt: split it into "
                           f"shorter sentences")
        return Prepared(phonemes, codes, target, given)

    def synthesize(self, requests: list[Request], config: GenerationConfig | None = None,
                   prompt_seconds: float = 3.0) -> list[np.ndarray]:
        """Audio float32 (T,) at `sampling_rate` per request, generated in one batch. Bad input raises."""
        prepared = [self.prepare(r, prompt_seconds) for r in requests]
        return self.synthesize_prepared(requests, prepared, config)

    def synthesize_prepared(self, requests, prepared, config: GenerationConfig | None = None) -> list[np.ndarray]:
        """Audio float32 (T,) per request of `prepare`d input, generated in one batch."""
        return [o.audio for o in self.synthesize_outputs(requests, prepared, config)]

    def synthesize_outputs(self, requests: list[Request], prepared: list[Prepared],
                           config: GenerationConfig | None = None) -> list[SynthesisOutput]:
        """`synthesize_prepared` with, per output, where its prompt part ends (continuation: the prompt's
        Fp frames decoded, Fp / frame_rate seconds) and how much of the prompt file the model was given."""
        codes = self.model.generate([p.phonemes for p in prepared], [p.codes for p in prepared],
                                    [p.target for p in prepared], config)
        sr, out = self.sampling_rate, []
        for req, p, new in zip(requests, prepared, codes):
            continuation = req.mode == "continuation"
            full = torch.cat([p.codes, new], dim=-1) if continuation else new
            if full.shape[-1] == 0:
                audio = np.zeros(0, dtype=np.float32)
            else:
                audio = self.codec.batch_decode(full[None])[0]
            # The decoder gives the same number of samples per frame, so the prompt's frames end here exactly.
            prompt_samples = p.codes.shape[-1] * len(audio) // full.shape[-1] if continuation else 0
            room = self.model.frames_available(p.codes.shape[-1])
            at_context = new.shape[-1] >= room
            if at_context:  # VALL-E ran out of context before its end; MobileSpeech's durations were cut to fit
                logger.warning("%s: %d frames, the whole context the model has after the prompt: the speech may "
                               "be cut short or hurried (split the text into shorter sentences)",
                               req.id or "output", new.shape[-1])
            out.append(SynthesisOutput(audio, sr, req.mode, prompt_samples, p.prompt_input_samples,
                                       self.model_record, at_context))
        return out
