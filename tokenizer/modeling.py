"""Base model every codec extends (a transformers `PreTrainedModel`, so `save_pretrained` writes
`config.json` + `model.safetensors` and `transformers.AutoModel` loads it).

Contract (shapes): audio FloatTensor (B, 1, T) at `config.sampling_rate`, `lengths` LongTensor (B,) true
samples (None: all T); codes LongTensor (B, K, F); frame lengths LongTensor (B,).
- `encode(audio, lengths=None, num_quantizers=None) -> (codes, frame_lengths)`
- `decode(codes, frame_lengths=None) -> (audio (B, 1, F * hop), sample_lengths)`
- `forward(input_values, lengths=None, ...)` -> a `CodecModelOutput` (audio, losses, codes where discrete).
Encoding an item inside a padded batch gives the codes it gets alone (batch invariance).

`encode` and `decode` are written here once (validation of K, default lengths, zeroing codes past each
item's end); a codec implements `_encode_codes` and `_decode_codes`.
"""

from __future__ import annotations

import hashlib

import torch
from transformers import PreTrainedModel

from .configuration import CodecConfig
from .utils.masking import zero_past_lengths
from .quantizers.base import validate_num_quantizers


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
        """audio (B, 1, T) -> codes (B, K, F) (0 past each item's end), frame lengths (B,)."""
        k = self.check_num_quantizers(num_quantizers)
        codes, frame_lengths = self._encode_codes(audio, lengths, k)
        if frame_lengths is None:
            return codes, self._full_lengths(codes)
        return zero_past_lengths(codes, frame_lengths), frame_lengths

    def decode(self, codes: torch.Tensor, frame_lengths: torch.Tensor | None = None, **kwargs):
        """codes (B, K, F) -> audio (B, 1, F * hop), sample lengths (B,) = frame lengths x hop.
        `kwargs` go to the codec's `_decode_codes` (e.g. Language-Codec's `bandwidth_id`)."""
        self.check_num_quantizers(codes.shape[1])
        audio = self._decode_codes(codes, frame_lengths, **kwargs)
        if frame_lengths is None:
            frame_lengths = self._full_lengths(codes)
        return audio, frame_lengths * self.config.hop_length

    def _encode_codes(self, audio: torch.Tensor, lengths: torch.Tensor | None, num_quantizers: int):
        """audio (B, 1, T), lengths (B,) | None, a validated K -> codes (B, K, F), frame lengths (B,) | None
        (None when `lengths` is None); codes past each end need not be zeroed."""
        raise NotImplementedError

    def _decode_codes(self, codes: torch.Tensor, frame_lengths: torch.Tensor | None, **kwargs) -> torch.Tensor:
        """codes (B, K, F) with a validated K, frame lengths (B,) | None -> audio (B, 1, F * hop)."""
        raise NotImplementedError

    @staticmethod
    def _full_lengths(codes: torch.Tensor) -> torch.Tensor:
        return torch.full((codes.shape[0],), codes.shape[-1], dtype=torch.long, device=codes.device)

    def supported_num_quantizers(self) -> list[int]:
        """Codes per frame (K) this model can encode and decode."""
        raise NotImplementedError

    def num_quantizers_note(self) -> str:
        """Why counts outside `supported_num_quantizers()` are refused (for the error message)."""
        return ""

    def check_num_quantizers(self, k: int | None) -> int:
        """Validate a quantizer count for this model (None: `config.num_quantizers`); returns the count to
        use. Raises ConfigError naming the value and the supported counts."""
        return validate_num_quantizers(k, self.supported_num_quantizers(), self.config.num_quantizers,
                                       self.config.model_type, self.num_quantizers_note())

    def code_vectors(self, num_quantizers: int | None = None) -> torch.Tensor:
        """(K, V, D) float32: the quantizer's latent vector of every code of each of the first K levels (see
        `Quantizer.code_vectors`); NotImplementedError when the codec's latent is not such a sum."""
        quantizer = getattr(self, "quantizer", None)
        if quantizer is None:
            raise NotImplementedError(f"{type(self).__name__} has no quantizer")
        return quantizer.code_vectors(self.check_num_quantizers(num_quantizers)).float()

    # ----------------------------------------------------------------- identity
    def _versions(self) -> tuple:
        # In-place updates (optimizer steps, load_state_dict) bump a tensor's version counter, so this key
        # changes whenever any weight does, at the cost of a tuple instead of hashing every byte.
        return tuple((id(t), t.data_ptr(), t._version) for t in self.state_dict(keep_vars=True).values())

    token_modules: tuple[str, ...] | None = None
    """The submodules that map audio to codes (e.g. `("encoder", "quantizer")`); None: the whole model.
    `tokens_digest` hashes only these, so a decoder retrained on frozen tokens keeps it."""

    def weights_digest(self) -> str:
        """sha256 (16 hex digits) of every weight and buffer, by name: with the config hash, the identity of
        the codec that made a set of tokens (recorded in shard manifests, bitstreams and TTS checkpoints).
        Cached until any weight changes."""
        return self._cached_digest("_digest", None)

    def tokens_digest(self) -> str:
        """sha256 (16 hex digits) of the weights and buffers of `token_modules` (all of them when None): two
        codecs of one config hash with equal tokens digests make the same codes from the same audio, whatever
        their decoders (see `tokenizer.identity`)."""
        if self.token_modules is None:
            return self.weights_digest()
        return self._cached_digest("_tokens_digest", self.token_modules)

    def _cached_digest(self, attr: str, prefixes: tuple[str, ...] | None) -> str:
        versions = self._versions()
        cached = getattr(self, attr, None)
        if cached is None or cached[0] != versions:
            cached = (versions, state_dict_digest(self, prefixes))
            setattr(self, attr, cached)
        return cached[1]


def state_dict_digest(module: torch.nn.Module, prefixes: tuple[str, ...] | None = None) -> str:
    """sha256 (16 hex digits) of a module's weights and buffers, by name (the codec identity's weights part;
    also used for the transformers codecs that `tokenizer.codecs.transformers_codecs` wraps). `prefixes`:
    only the entries of these submodules."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        if prefixes is not None and name.split(".", 1)[0] not in prefixes:
            continue
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
