"""`CodecTokenizer`: a codec model wrapped the way users hold a text tokenizer.

`tok(audio, sampling_rate=sr)` encodes (resample, mono mix, pad, batch-invariant codes, chunking of long
items); `tok.decode(codes)` and `tok.batch_decode(codes)` turn codes back into audio. Every codec family
uses this class, or a subclass that adds what the family offers (post-hoc quantization, bitstreams).

Long audio: items longer than `chunk_seconds + 2 * context_seconds` are encoded in windows of
`chunk_seconds` with `context_seconds` of audio on each side, and only the window's central frames are
kept. Memory is bounded by the window, whatever the file length. Codes of chunked items can differ from
an unchunked encode only where the encoder would have looked beyond the context: Language-Codec's
convolutions see less than 0.1 s, but its LSTM carries state from the whole past, so a few frames
right after each chunk start may differ (the tests measure > 95% agreement). Items shorter than the
threshold are never chunked, so their codes are exact.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .audio import AudioInput, pad_batch, prepare_audio
from .utils.errors import CodecError, ConfigError
from .loading import load_model, quiet_progress_bars, untrained_model
from .modeling import CodecModel
from .utils.masking import zero_past_lengths
from .outputs import CodecDecoding, CodecEncoding
from .registry import get_codec_spec

logger = logging.getLogger(__name__)


class CodecTokenizer:
    """Encode audio to discrete codes and decode codes to audio with one codec model.

    Properties (derived from the config): `sampling_rate` (Hz), `hop_length` (samples per frame),
    `frame_rate` (Hz), `num_quantizers` (codes per frame by default), `codebook_size`, `bitrate`
    (bits per second) and `tokens_per_second`.

    `tok(audio)` encodes and `tok.decode(codes)` decodes, under `torch.no_grad()`: their tensors are
    ordinary ones that can enter an autograd graph (e.g. through an embedding) and be edited in place.
    `tok.encode` is an alias of `tok(...)` and returns the same `CodecEncoding` (not a list of ids as a
    transformers text tokenizer's `encode` does).
    """

    def __init__(self, model: CodecModel):
        self.model = model.eval()
        self.config = model.config

    # ----------------------------------------------------------------- construction and saving
    @classmethod
    def _check_family(cls, model_type: str) -> None:
        """A family's own tokenizer class only wraps that family (the base class wraps any codec)."""
        own = get_codec_spec(model_type).tokenizer_class
        if not issubclass(own, cls):
            raise ConfigError(f"{cls.__name__} cannot hold a {model_type} codec (its tokenizer is "
                              f"{own.__name__}); use AutoCodecTokenizer to pick the class by codec")

    @classmethod
    def from_config(cls, config, seed: int | None = 0) -> "CodecTokenizer":
        """An untrained tokenizer of this class from a config (random weights; seeded so runs are
        reproducible). `AutoCodecTokenizer.from_config` picks the family's class."""
        cls._check_family(config.model_type)
        return cls(untrained_model(config, seed))

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device: str | torch.device | None = None,
                        random_weights: bool = False) -> "CodecTokenizer":
        """This class around the codec of a local `save_pretrained` directory, a built-in name or a hub id
        (see `tokenizer.loading`). `AutoCodecTokenizer.from_pretrained` picks the family's class."""
        model = load_model(name_or_path, random_weights=random_weights)
        cls._check_family(model.config.model_type)
        tok = cls(model)
        return tok.to(device) if device else tok

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write `config.json` and `model.safetensors` (never pickle) to `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with quiet_progress_bars():
            self.model.save_pretrained(directory, safe_serialization=True)
        return directory

    def to(self, device: str | torch.device) -> "CodecTokenizer":
        self.model.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ----------------------------------------------------------------- derived properties
    @property
    def sampling_rate(self) -> int:
        return int(self.config.sampling_rate)

    @property
    def hop_length(self) -> int:
        return int(self.config.hop_length)

    @property
    def frame_rate(self) -> float:
        return float(self.config.frame_rate)

    @property
    def num_quantizers(self) -> int:
        return int(self.config.num_quantizers)

    @property
    def codebook_size(self) -> int:
        return int(self.config.codebook_size)

    @property
    def bitrate(self) -> float:
        """Bits per second at the default number of quantizers."""
        return float(self.config.bitrate)

    def bitrate_for(self, num_quantizers: int | None = None) -> float:
        """Bits per second with `num_quantizers` codes per frame (validated)."""
        return float(self.config.bitrate_for(self.model.check_num_quantizers(num_quantizers)))

    @property
    def tokens_per_second(self) -> float:
        return float(self.config.tokens_per_second)

    @property
    def config_hash(self) -> str:
        """Hash of the architecture config (see `CodecConfig.config_hash`)."""
        return self.config.config_hash()

    @property
    def weights_digest(self) -> str:
        """Hash of the weights (see `CodecModel.weights_digest`): with `config_hash`, the codec's identity."""
        return self.model.weights_digest()

    @property
    def tokens_digest(self) -> str:
        """Hash of the weights that map audio to codes (see `CodecModel.tokens_digest`)."""
        return self.model.tokens_digest()

    def apply_record(self, record: dict) -> "CodecTokenizer":
        """Re-apply the settings a codec record (`codec_info`) carries beyond the checkpoint itself, before
        its identity is compared: nothing for most codecs; post-hoc quantization for those that have it
        (Stable Codec's FSQ levels and stages). Returns self."""
        return self

    @property
    def supports_post_hoc_quantization(self) -> bool:
        """Whether `set_quantization` can change this codec's token alphabet after training."""
        return callable(getattr(self, "set_quantization", None))

    def identity(self) -> dict:
        """The record `tokenizer.identity.tokens_mismatch` compares: model type, config hash, weights and
        tokens digests, and the config's `same_tokens_as` (weights digests whose tokens these are too)."""
        return {
            "model_type": self.config.model_type,
            "config_hash": self.config.config_hash(),
            "weights_digest": self.model.weights_digest(),
            "tokens_digest": self.model.tokens_digest(),
            "same_tokens_as": list(getattr(self.config, "same_tokens_as", None) or []),
        }

    @property
    def name(self) -> str:
        return self.config.model_type

    @torch.no_grad()
    def code_vectors(self, num_quantizers: int | None = None) -> torch.Tensor:
        """(K, V, D) float32 on the CPU: the codec's latent vector of every code of each of the first K levels,
        such that a frame's quantized latent is the sum over levels of its codes' vectors (RVQ / MCRVQ
        codebooks, FSQ stage values). What a downstream model can read codes through instead of learning
        an embedding per code (MobileSpeech's aligner does). CodecError for a codec without such a table."""
        table = getattr(self.model, "code_vectors", None)
        try:
            if table is None:
                raise NotImplementedError(f"{type(self.model).__name__} does not expose one")
            return table(num_quantizers).detach().float().cpu()
        except NotImplementedError as exc:
            raise CodecError(f"codec {self.name!r} has no table of per-code latent vectors: {exc}") from None

    def codec_info(self, num_quantizers: int | None = None) -> dict:
        """What a consumer of these tokens must know (written into shard manifests)."""
        k = self.model.check_num_quantizers(num_quantizers)
        return {
            **self.identity(),
            "sampling_rate": self.sampling_rate,
            "hop_length": self.hop_length,
            "frame_rate": self.frame_rate,
            "num_quantizers": k,
            "codebook_size": self.codebook_size,
            "bitrate": float(self.config.bitrate_for(k)),
            "name_or_path": getattr(self.config, "_name_or_path", "") or "",
        }

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.config.model_type}, {self.sampling_rate} Hz, {self.frame_rate:g} Hz frames, "
                f"{self.num_quantizers} x {self.codebook_size} codes, {self.bitrate:g} bps)")

    # ----------------------------------------------------------------- encoding
    @torch.no_grad()
    def __call__(
        self,
        audio: AudioInput,
        sampling_rate: int | None = None,
        num_quantizers: int | None = None,
        chunk_seconds: float | None = 30.0,
        context_seconds: float = 2.0,
        batch_size: int = 16,
    ) -> CodecEncoding:
        """Encode audio to codes.

        audio: one clip (a file path, or an array/tensor (T,), (C, T) or (T, C): the channel dimension is
        the one of at most 16, so `soundfile.read` output works as is) or a batch (a list of clips of any
        lengths, or a (B, C, T) array/tensor). A 2-D array is one clip, never a batch. Float samples are
        expected in [-1, 1] (a peak above 100 is refused as unscaled PCM); int8/int16/int32/uint8 PCM is
        scaled as soundfile reads it. Arrays are taken at `sampling_rate` Hz (default: the codec's rate;
        1000 to 1000000); everything is resampled to the codec's rate and mixed to mono.
        num_quantizers: codes per frame (bitrate control), validated against the codec.
        chunk_seconds / context_seconds: windowing of long items (None disables chunking).
        batch_size: items encoded together (memory bound for long lists).
        Returns `CodecEncoding(codes (B, K, F) int64, lengths (B,) frames, sample_lengths (B,))`.
        """
        if sampling_rate is None and not _is_paths(audio):
            logger.warning("no sampling_rate given: assuming the codec's rate, %d Hz", self.sampling_rate)
        k = self.model.check_num_quantizers(num_quantizers)
        clips = prepare_audio(audio, sampling_rate, self.sampling_rate)
        if batch_size < 1:
            raise CodecError(f"batch_size must be >= 1, got {batch_size}")
        limit = None
        if chunk_seconds is not None:
            if chunk_seconds <= 0 or context_seconds < 0:
                raise CodecError(f"chunk_seconds must be > 0 and context_seconds >= 0, got {chunk_seconds}, {context_seconds}")
            limit = int((chunk_seconds + 2 * context_seconds) * self.sampling_rate)
        codes: list[torch.Tensor | None] = [None] * len(clips)
        short = [i for i, c in enumerate(clips) if limit is None or len(c) <= limit]
        for start in range(0, len(short), batch_size):
            idx = short[start : start + batch_size]
            for i, c in zip(idx, self._encode_clips([clips[i] for i in idx], k)):
                codes[i] = c
        for i, c in enumerate(clips):
            if codes[i] is None:
                codes[i] = self._encode_chunked(c, k, chunk_seconds, context_seconds, batch_size)
        lengths = torch.tensor([c.shape[-1] for c in codes], dtype=torch.long)
        out = torch.zeros(len(codes), k, int(lengths.max()), dtype=torch.long)
        for i, c in enumerate(codes):
            out[i, :, : c.shape[-1]] = c
        return CodecEncoding(
            codes=out, lengths=lengths, sample_lengths=torch.tensor([len(c) for c in clips], dtype=torch.long),
            sampling_rate=self.sampling_rate, frame_rate=self.frame_rate,
        )

    encode = __call__  # documented alias (see the class docstring)

    def _encode_clips(self, clips: Sequence[np.ndarray], k: int) -> list[torch.Tensor]:
        """Encode mono clips in one padded batch; returns codes (K, F_i) per clip."""
        min_len = self.model.min_input_samples
        # Items shorter than the model's minimum are zero-padded to it (and coded as that long).
        clips = [c if len(c) >= min_len else np.pad(c, (0, min_len - len(c))) for c in clips]
        batch = pad_batch(clips, self.sampling_rate, multiple=self.hop_length)
        codes, frames = self.model.encode(batch.audio.to(self.device), batch.lengths.to(self.device), k)
        codes = codes.cpu()
        return [codes[i, :, : int(f)] for i, f in enumerate(frames.cpu())]

    def _window(self, chunk_seconds: float, context_seconds: float) -> tuple[int, int]:
        """Frames per window and of context on each side for long items (codecs with coarser latent
        strides override this to align windows)."""
        return max(1, round(chunk_seconds * self.frame_rate)), math.ceil(context_seconds * self.frame_rate)

    def _encode_chunked(self, clip: np.ndarray, k: int, chunk_seconds: float, context_seconds: float,
                        batch_size: int) -> torch.Tensor:
        hop = self.hop_length
        chunk, ctx = self._window(chunk_seconds, context_seconds)
        n_frames = math.ceil(len(clip) / hop)
        windows = []
        for start in range(0, n_frames, chunk):
            end = min(start + chunk, n_frames)
            ws, we = max(0, start - ctx), min(n_frames, end + ctx)
            windows.append((clip[ws * hop : min(len(clip), we * hop)], start - ws, end - ws))
        pieces = []
        for b in range(0, len(windows), batch_size):
            group = windows[b : b + batch_size]
            for (_, keep0, keep1), c in zip(group, self._encode_clips([w[0] for w in group], k)):
                pieces.append(c[:, keep0:keep1])
        return torch.cat(pieces, dim=-1)

    # ----------------------------------------------------------------- decoding
    def _check_codes(self, codes) -> torch.Tensor:
        """Codes as int64 (B, K, F), checked. Unsigned integer codes (the uint16/uint8 arrays shards store,
        which torch cannot reduce) are range-checked in numpy, then cast."""
        if isinstance(codes, torch.Tensor) and codes.dtype in (torch.uint16, torch.uint32, torch.uint64):
            codes = codes.cpu().numpy()
        if isinstance(codes, np.ndarray):
            if codes.dtype.kind == "u":
                if codes.size and int(codes.max()) >= self.codebook_size:
                    raise CodecError(f"code {int(codes.max())} outside the codebook [0, {self.codebook_size - 1}]")
                codes = codes.astype(np.int64)
            elif codes.dtype.kind not in "ifcb":
                raise CodecError(f"codes must be integers, got dtype {codes.dtype}")
            codes = torch.from_numpy(codes)
        if not isinstance(codes, torch.Tensor):
            raise CodecError(f"codes must be a tensor or numpy array, got {type(codes).__name__}")
        if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
            raise CodecError(f"codes must be integers, got dtype {codes.dtype}")
        if codes.ndim == 2:
            codes = codes[None]
        if codes.ndim != 3:
            raise CodecError(f"codes must have shape (B, K, F) or (K, F), got {tuple(codes.shape)}")
        if codes.shape[0] == 0:
            raise CodecError(f"codes have 0 items (shape {tuple(codes.shape)}): nothing to decode")
        if codes.shape[-1] == 0:
            raise CodecError("codes have 0 frames: nothing to decode")
        self.model.check_num_quantizers(codes.shape[1])
        lo, hi = int(codes.min()), int(codes.max())
        if lo < 0 or hi >= self.codebook_size:
            bad = lo if lo < 0 else hi
            raise CodecError(f"code {bad} outside the codebook [0, {self.codebook_size - 1}]")
        return codes.long()

    @torch.no_grad()
    def decode(self, codes, lengths: torch.Tensor | Sequence[int] | None = None, chunk_seconds: float | None = 30.0,
               context_seconds: float = 2.0, **kwargs) -> CodecDecoding:
        """Codes -> audio.

        codes: (B, K, F) or (K, F) integers, or a `CodecEncoding` (then its frame and sample lengths are
        used). lengths: valid frames per item (None: all F). Long items are decoded in windows of
        `chunk_seconds` with `context_seconds` of codes on each side. Returns
        `CodecDecoding(audio (B, 1, T), lengths (B,) samples)`.
        """
        sample_lengths = None
        if isinstance(codes, CodecEncoding):
            lengths, sample_lengths, codes = codes.lengths.cpu(), codes.sample_lengths.cpu(), codes.codes
        codes = self._check_codes(codes)
        B, K, F = codes.shape
        lengths = (torch.full((B,), F, dtype=torch.long) if lengths is None
                   else torch.as_tensor(lengths, dtype=torch.long, device="cpu"))
        if lengths.shape != (B,) or int(lengths.min()) < 1 or int(lengths.max()) > F:
            raise CodecError(f"lengths {lengths.tolist()} must be {B} values in [1, {F}]")
        limit = None if chunk_seconds is None else round((chunk_seconds + 2 * context_seconds) * self.frame_rate)
        if limit is None or F <= limit:
            audio, out_lengths = self.model.decode(codes.to(self.device), lengths.to(self.device), **kwargs)
            audio, out_lengths = audio.cpu(), out_lengths.cpu()
        else:
            pieces = [self._decode_chunked(codes[i, :, : int(lengths[i])], chunk_seconds, context_seconds, **kwargs)
                      for i in range(B)]
            out_lengths = torch.tensor([p.shape[-1] for p in pieces], dtype=torch.long)
            audio = torch.zeros(B, 1, int(out_lengths.max()))
            for i, p in enumerate(pieces):
                audio[i, 0, : p.shape[-1]] = p
        if sample_lengths is not None:
            out_lengths = torch.minimum(out_lengths, sample_lengths)
        audio = zero_past_lengths(audio, out_lengths)
        return CodecDecoding(audio=audio, lengths=out_lengths, sampling_rate=self.sampling_rate)

    def _decode_chunked(self, codes: torch.Tensor, chunk_seconds: float, context_seconds: float, **kwargs) -> torch.Tensor:
        hop, F = self.hop_length, codes.shape[-1]
        chunk, ctx = self._window(chunk_seconds, context_seconds)
        out = []
        for start in range(0, F, chunk):
            end = min(start + chunk, F)
            ws, we = max(0, start - ctx), min(F, end + ctx)
            audio, _ = self.model.decode(codes[None, :, ws:we].to(self.device), None, **kwargs)
            out.append(audio[0, 0, (start - ws) * hop : (end - ws) * hop].cpu())
        return torch.cat(out)

    def batch_decode(self, codes, lengths=None, **kwargs) -> list[np.ndarray]:
        """Decode and return one float32 array (T_i,) per item, trimmed to its true length."""
        out = self.decode(codes, lengths, **kwargs)
        return [out.audio[i, 0, : int(n)].numpy() for i, n in enumerate(out.lengths)]


def _is_paths(audio) -> bool:
    if isinstance(audio, (str, os.PathLike)):
        return True
    return isinstance(audio, (list, tuple)) and len(audio) > 0 and all(isinstance(a, (str, os.PathLike)) for a in audio)
