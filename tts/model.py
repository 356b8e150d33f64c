"""The contract between TTS models and the shared trainer / synthesis, written once.

A TTS model is a transformers `PreTrainedModel` (so `save_pretrained` writes `config.json` +
`model.safetensors`) whose config is a `TTSConfig`: architecture fields plus the two records that make an
export usable on its own, `codec` (the codec that made the training tokens: name, model type, config hash,
weights digest, K, codebook size, frame and sampling rates) and `phoneme_tokens` (the phoneme vocabulary,
id = position) with the espeak `language`.

- `forward(batch: TTSBatch, stage: int | None = None) -> TTSOutput`: training loss and metrics; `stage`
  picks one NAR codebook explicitly (validation), else the model draws what it trains.
- `generate(phonemes, prompts, num_target_phonemes, config) -> list[LongTensor (K, F_i)]`: codes of the
  new speech only (the prompt is not repeated), one entry per item, batched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from transformers import PreTrainedConfig, PreTrainedModel

from tokenizer.identity import missing_identity
from tokenizer.utils.errors import ConfigError

from .errors import TTSError


class TTSConfig(PreTrainedConfig):
    """Fields every TTS model config has (see the module docstring)."""

    model_type = "tts"
    num_quantizers: int = 8
    codebook_size: int = 1024
    phoneme_vocab_size: int = 128
    frame_rate: float = 75.0
    max_frames: int = 4096          # context: prompt + generated audio frames
    codec: dict | None = None
    phoneme_tokens: list[str] | None = None
    language: str = "en-us"
    PRESETS: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self, **kwargs):
        if self.num_quantizers < 1 or self.codebook_size < 2:
            raise ConfigError(f"num_quantizers={self.num_quantizers}, codebook_size={self.codebook_size}: need "
                              ">= 1 codebook of >= 2 entries")
        super().__post_init__(**kwargs)

    @staticmethod
    def check_heads(hidden_size: int, num_attention_heads: int) -> None:
        """ConfigError unless the width splits evenly into attention heads."""
        if hidden_size % num_attention_heads:
            raise ConfigError(f"hidden_size {hidden_size} is not a multiple of num_attention_heads "
                              f"{num_attention_heads}")

    @classmethod
    def preset(cls, name: str, **kw) -> "TTSConfig":
        """The config of preset `name` (a classmethod of that name), with field overrides `kw`."""
        if name not in cls.PRESETS:
            raise ConfigError(f"unknown {cls.model_type} preset {name!r}; known: {', '.join(cls.PRESETS)}")
        return getattr(cls, name)(**kw)

    def check_codec_record(self, where: str = "model") -> dict:
        """The codec record, or TTSError when the export has none (it cannot say which codec to load)."""
        if not self.codec or missing_identity(self.codec, ("config_hash", "weights_digest")):
            raise TTSError(f"{where} records no codec (name, config hash, weights digest): cannot tell which "
                           "codec its tokens belong to")
        return self.codec


@dataclass
class TTSOutput:
    """loss: scalar tensor to backpropagate; metrics: detached floats by name ("ar/loss", "nar/top10_q2"...)."""

    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)


class TTSModel(PreTrainedModel):
    config_class = TTSConfig
    base_model_prefix = "tts"

    def _init_weights(self, module):
        pass  # blocks initialise themselves; the Llama backbone is initialised by its own post_init

    def forward(self, batch, stage: int | None = None) -> TTSOutput:  # pragma: no cover - interface
        raise NotImplementedError

    def generate(self, phonemes, prompts, num_target_phonemes, config):  # pragma: no cover - interface
        raise NotImplementedError

    def frames_available(self, prompt_frames: int) -> int:
        """Frames of new speech the context leaves after a prompt of `prompt_frames` frames (default: prompt
        and generated frames share `config.max_frames`, as in VALL-E's AR)."""
        return int(self.config.max_frames) - int(prompt_frames)
