"""Base model every codec extends (a transformers `PreTrainedModel`, so `save_pretrained` writes
`config.json` + `model.safetensors` and `transformers.AutoModel` loads it).

Contract (shapes): audio FloatTensor (B, 1, T) at `config.sampling_rate`, `lengths` LongTensor (B,) true
samples (None: all T); codes LongTensor (B, K, F); frame lengths LongTensor (B,).
- `encode(audio, lengths=None, num_quantizers=None) -> (codes, frame_lengths)`
- `decode(codes, frame_lengths=None) -> (audio (B, 1, F * hop), sample_lengths)`
- `forward(input_values, lengths=None, ...)` -> a training output with `audio`, `codes` and losses.
Encoding an item inside a padded batch gives the codes it gets alone (batch invariance).
"""

from __future__ import annotations

import hashlib

import torch
from transformers import PreTrainedModel

from .configuration import CodecConfig


class CodecModel(PreTrainedModel):
    config_class = CodecConfig
    base_model_prefix = "codec"
    main_input_name = "input_values"

    def _init_weights(self, module):
        # Blocks initialise themselves in their constructors (weight norm, EMA codebooks, AdaLN rows).
        pass

    @property
    def min_input_samples(self) -> int:
        """Shorter items are zero-padded to this many samples before encoding."""
        return self.config.hop_length

    def encode(self, audio: torch.Tensor, lengths: torch.Tensor | None = None, num_quantizers: int | None = None):
        raise NotImplementedError

    def decode(self, codes: torch.Tensor, frame_lengths: torch.Tensor | None = None):
        raise NotImplementedError

    def check_num_quantizers(self, k: int | None) -> int:
        """Validate a quantizer count for this model; returns the count to use."""
        raise NotImplementedError

    def supported_num_quantizers(self) -> list[int]:
        raise NotImplementedError

    # ----------------------------------------------------------------- identity
    def _versions(self) -> tuple:
        # In-place updates (optimizer steps, load_state_dict) bump a tensor's version counter, so this key
        # changes whenever any weight does, at the cost of a tuple instead of hashing every byte.
        return tuple((id(t), t.data_ptr(), t._version) for t in self.state_dict(keep_vars=True).values())

    def weights_digest(self) -> str:
        """sha256 (16 hex digits) of every weight and buffer, by name: with the config hash, the identity of
        the codec that made a set of tokens (recorded in shard manifests, bitstreams and TTS checkpoints).
        Cached until any weight changes."""
        versions = self._versions()
        cached = getattr(self, "_digest", None)
        if cached is None or cached[0] != versions:
            h = hashlib.sha256()
            for name, t in sorted(self.state_dict().items()):
                h.update(name.encode())
                h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
            self._digest = cached = (versions, h.hexdigest()[:16])
        return cached[1]
