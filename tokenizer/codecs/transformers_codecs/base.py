"""What every wrapped transformers codec shares: the adapter contract, the config view and the tokenizer.

`TransformersCodecModel` is an `nn.Module` around a transformers model (`self.hf`) that speaks the
contract of `tokenizer.modeling.CodecModel`: `encode(audio (B, 1, T), lengths (B,), K) -> codes (B, K, F)
int64 (0 past each end), frame lengths (B,)`, `decode(codes, frame lengths) -> audio (B, 1, F * hop),
sample lengths (B,)`, `check_num_quantizers`, `weights_digest` and `save_pretrained`. A family adapter
(`families.py`) implements `_encode` / `_decode` and states its rates, codebook and quantizer counts.

Batching: items are encoded one at a time by default, so an item's codes never depend on what it is
batched with (Mimi, for example, ignores its padding mask: transformers #43377); an adapter whose model
masks padding (causal EnCodec) sets `batch_invariant` and may be encoded in padded batches on request
(`TransformersCodecTokenizer.padded_batches`). Decoding decodes each item at its own length unless the
model is batch invariant.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ...configuration import RateProperties
from ...utils.errors import CodecError, ConfigError
from ...loading import quiet_progress_bars, transformers_codec_source
from ...modeling import state_dict_digest
from ...utils.masking import zero_past_lengths
from ...quantizers.base import validate_num_quantizers
from ...registry import TransformersCodecSpec, transformers_codec_spec
from ...tokenization import CodecTokenizer


class TransformersCodecConfig(RateProperties):
    """The toolkit's config contract read off a wrapped transformers codec: `model_type`, `sampling_rate`
    (Hz), `hop_length` (samples per frame), `frame_rate` (Hz), `num_quantizers` (the family's own default
    operating point), `codebook_size`, `codebook_sizes(k)`, `bitrate_for(k)` (bits per second), `bitrate`,
    `tokens_per_second` and `config_hash()` (of the transformers config's architecture fields).
    `hf` is the transformers config itself."""

    def __init__(self, model: "TransformersCodecModel"):
        self._model = model
        self.hf = model.hf.config
        self.model_type = self.hf.model_type

    @property
    def _name_or_path(self) -> str:
        return getattr(self.hf, "_name_or_path", "") or ""

    @property
    def sampling_rate(self) -> int:
        return self._model.sampling_rate

    @property
    def hop_length(self) -> int:
        return self._model.hop_length

    @property
    def num_quantizers(self) -> int:
        return self._model.default_num_quantizers

    @property
    def codebook_size(self) -> int:
        return self._model.codebook_size

    def to_dict(self) -> dict:
        return self.hf.to_dict()


class TransformersCodecModel(torch.nn.Module):
    """Adapter base (see the module docstring). Subclasses set the properties below and implement
    `_encode(audio (B, 1, T), lengths (B,), k) -> codes (B, k, F)` and `_decode(codes (B, k, F)) -> audio
    (B, 1, T') or (B, T')`; T' is cropped or zero-padded to F x hop here."""

    batch_invariant = False  # True: items of a padded batch get the codes they get alone
    receptive_field_seconds = 0.5  # audio the encoder looks at around a frame (context for windowing)

    def __init__(self, hf_model: torch.nn.Module, feature_extractor=None):
        super().__init__()
        self.hf = hf_model.eval()
        self.feature_extractor = feature_extractor
        self.config = TransformersCodecConfig(self)
        self.check()

    def check(self) -> None:
        """Refuse a configuration the adapter cannot wrap faithfully (ConfigError naming it)."""

    # ----------------------------------------------------------------- what a family states
    @property
    def sampling_rate(self) -> int:
        return int(self.hf.config.sampling_rate)

    @property
    def hop_length(self) -> int:
        return int(self.hf.config.hop_length)

    @property
    def codebook_size(self) -> int:
        return int(self.hf.config.codebook_size)

    @property
    def default_num_quantizers(self) -> int:
        return max(self.supported_num_quantizers())

    def supported_num_quantizers(self) -> list[int]:
        return [1]

    def num_quantizers_note(self) -> str:
        return ""

    @property
    def min_input_samples(self) -> int:
        return self.hop_length

    def check_num_quantizers(self, k: int | None) -> int:
        return validate_num_quantizers(k, self.supported_num_quantizers(), self.default_num_quantizers,
                                       self.config.model_type, self.num_quantizers_note())

    # ----------------------------------------------------------------- the CodecModel contract
    def encode(self, audio: torch.Tensor, lengths: torch.Tensor | None = None, num_quantizers: int | None = None):
        """audio (B, 1, T) -> codes (B, K, F) int64 (0 past each item's end), frame lengths (B,)."""
        k = self.check_num_quantizers(num_quantizers)
        if lengths is None:
            lengths = torch.full((audio.shape[0],), audio.shape[-1], dtype=torch.long, device=audio.device)
        codes = self._encode(audio, lengths, k).long()
        if codes.shape[1] != k:
            raise CodecError(f"{self.config.model_type} returned {codes.shape[1]} codebooks, {k} were asked")
        frames = torch.clamp((lengths + self.hop_length - 1) // self.hop_length, max=codes.shape[-1]).to(codes.device)
        return zero_past_lengths(codes, frames), frames

    def decode(self, codes: torch.Tensor, frame_lengths: torch.Tensor | None = None, **kwargs):
        """codes (B, K, F) -> audio (B, 1, F * hop), sample lengths (B,) = frame lengths x hop. Items shorter
        than F are decoded alone at their length unless the model is batch invariant."""
        self.check_num_quantizers(codes.shape[1])
        B, _, F = codes.shape
        if frame_lengths is None:
            frame_lengths = torch.full((B,), F, dtype=torch.long, device=codes.device)
        if self.batch_invariant or bool((frame_lengths == F).all()):
            audio = self._fit(self._decode(codes, **kwargs), F)
        else:
            audio = torch.zeros(B, 1, F * self.hop_length, device=codes.device)
            for i, n in enumerate(frame_lengths.tolist()):
                audio[i, :, : n * self.hop_length] = self._fit(self._decode(codes[i : i + 1, :, :n], **kwargs), n)[0]
        return audio, frame_lengths * self.hop_length

    def _fit(self, audio: torch.Tensor, frames: int) -> torch.Tensor:
        """(B, T') or (B, 1, T') -> (B, 1, frames x hop), cropped or zero-padded at the end."""
        if audio.ndim == 2:
            audio = audio[:, None]
        audio = audio[:, :1].float()
        n = frames * self.hop_length
        if audio.shape[-1] >= n:
            return audio[..., :n]
        return torch.nn.functional.pad(audio, (0, n - audio.shape[-1]))

    def _encode(self, audio: torch.Tensor, lengths: torch.Tensor, k: int) -> torch.Tensor:
        raise NotImplementedError

    def _decode(self, codes: torch.Tensor, **kwargs) -> torch.Tensor:
        raise NotImplementedError

    # ----------------------------------------------------------------- identity, loading, saving
    def weights_digest(self) -> str:
        """sha256 (16 hex digits) of the transformers model's weights by name (same recipe as our codecs)."""
        key = tuple((id(t), t.data_ptr(), t._version) for t in self.hf.state_dict(keep_vars=True).values())
        cached = getattr(self, "_digest", None)
        if cached is None or cached[0] != key:
            self._digest = cached = (key, state_dict_digest(self.hf))
        return cached[1]

    def tokens_digest(self) -> str:
        """The whole model's digest: a wrapped codec has no decoder-only identity."""
        return self.weights_digest()

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        with quiet_progress_bars():
            self.hf.save_pretrained(directory, safe_serialization=True)
            if self.feature_extractor is not None:
                self.feature_extractor.save_pretrained(directory)
        return directory

    @classmethod
    def feature_extractor_for(cls, source: str, hf_config):
        """The preprocessing the family's encoder needs (None: raw audio is enough)."""
        return None

    @classmethod
    def load(cls, spec: TransformersCodecSpec, source: str) -> "TransformersCodecModel":
        """The adapter around transformers' `AutoModel.from_pretrained(source)` (a directory or a hub id,
        downloaded by transformers), float32, eval mode."""
        require(spec)
        from transformers import AutoModel

        try:
            with quiet_progress_bars():
                hf = AutoModel.from_pretrained(source, dtype=torch.float32)
        except (OSError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CodecError(f"cannot load {spec.model_type} codec {source}: {first}") from exc
        return cls(hf, cls.feature_extractor_for(source, hf.config))


def require(spec: TransformersCodecSpec) -> None:
    """ConfigError when the family's transformers classes need a package that is not installed."""
    if spec.requires and importlib.util.find_spec(spec.requires) is None:
        raise ConfigError(f"codec family {spec.model_type} needs {spec.requires}, which is not installed "
                          f"(pip install {spec.requires})")


class TransformersCodecTokenizer(CodecTokenizer):
    """A transformers audio codec with the toolkit's tokenizer API (`CodecTokenizer`: `tok(audio)`,
    `decode`, `batch_decode`, windowing of long audio, `codec_info`, `save_pretrained`).

    `num_quantizers` selects the family's operating point (EnCodec/X-Codec bandwidth, DAC `n_quantizers`,
    Mimi `num_quantizers`); its default is the family's own default (see each adapter).
    Batch invariance: by default every item is encoded alone, so its codes never depend on the other
    items, bit for bit (slower than one padded call). `tok.padded_batches = True` encodes a batch in one
    padded call where the adapter is `batch_invariant` (causal, unnormalised EnCodec with its padding
    mask: padding cannot reach an item's frames); the codes then differ from the item alone only where
    float rounding of a different batch size flips a near-tie between two codebook entries (measured:
    one frame in 85 with the tiny random test codec). Other families (Mimi ignores its padding mask,
    transformers #43377; non-causal encoders see the padding) are always encoded one item at a time.
    Long items: windows of `chunk_seconds` with at least the family's receptive field as context.
    """

    model: TransformersCodecModel

    @classmethod
    def _check_family(cls, model_type: str) -> None:
        transformers_codec_spec(model_type)

    @classmethod
    def from_config(cls, config, seed: int | None = 0) -> "TransformersCodecTokenizer":
        """Random weights from a transformers config (seeded): for tests and speed measurements."""
        from transformers import AutoModel

        spec = transformers_codec_spec(config.model_type)
        require(spec)
        with torch.random.fork_rng():
            if seed is not None:
                torch.manual_seed(seed)
            hf = AutoModel.from_config(config).float()
        adapter = spec.adapter_class
        return cls(adapter(hf, adapter.feature_extractor_for(None, config)))

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device: str | torch.device | None = None,
                        random_weights: bool = False) -> "TransformersCodecTokenizer":
        found = transformers_codec_source(name_or_path)
        if found is None:
            raise ConfigError(f"{name_or_path} is not a transformers audio codec")
        spec, source = found
        tok = cls(spec.adapter_class.load(spec, source))
        return tok.to(device) if device else tok

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """transformers' `save_pretrained` (config.json + model.safetensors, and the feature extractor's
        preprocessor_config.json where the family has one): `from_pretrained(directory)` loads it back."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        return self.model.save_pretrained(directory)

    padded_batches = False  # see the class docstring: True trades exactness for batched speed

    def _encode_clips(self, clips: Sequence[np.ndarray], k: int) -> list[torch.Tensor]:
        if (self.padded_batches and self.model.batch_invariant) or len(clips) <= 1:
            return super()._encode_clips(clips, k)
        return [CodecTokenizer._encode_clips(self, [clip], k)[0] for clip in clips]

    def _window(self, chunk_seconds: float, context_seconds: float) -> tuple[int, int]:
        chunk, ctx = super()._window(chunk_seconds, context_seconds)
        return chunk, max(ctx, math.ceil(self.model.receptive_field_seconds * self.frame_rate))
