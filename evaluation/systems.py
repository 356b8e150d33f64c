"""One round-trip interface for everything that is evaluated: neural codecs at each operating point
and the classic baselines (`baselines.py`), so every table and curve can hold them side by side.

A `SpeechCodec` has `name` (row label), `family` (curve label), `sampling_rate` (Hz), `bitrate`
(nominal bits per second) and `roundtrip(audio (T,)) -> RoundTrip` with the reconstruction (T,) at
`sampling_rate`, the bits actually spent and the encode / decode times.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from tokenizer.utils.errors import CodecError

from .collapse import symbols_changed


@dataclass
class RoundTrip:
    """audio: float32 (T,) at the codec's rate; bits: bits of the coded representation;
    encode_seconds / decode_seconds: wall time; codes: int array (K, F) for token codecs, else None;
    container_bits: size of the file the classic tools write (headers and framing included), if any;
    symbols_changed: share of the code positions that differ from the codes of silence of the same length
    (token codecs; 0 means the codes ignore the input: a collapsed model)."""

    audio: np.ndarray
    bits: int
    encode_seconds: float
    decode_seconds: float
    codes: np.ndarray | None = None
    container_bits: int | None = None
    symbols_changed: float | None = None


class SpeechCodec(ABC):
    """What every evaluated system provides (see the module docstring).

    waveform_matching: False for parametric codecs, whose waveform metrics (SI-SDR) mean nothing.
    align_delay: True when the decoder's output is delayed and must be aligned (cross-correlation)
    before waveform metrics.
    """

    name: str
    family: str
    point: str = ""
    source: str | None = None
    sampling_rate: int
    bitrate: float
    waveform_matching: bool = True
    align_delay: bool = False

    @abstractmethod
    def roundtrip(self, audio: np.ndarray) -> RoundTrip:
        """Code and decode one mono clip (T,) float in [-1, 1] at `sampling_rate` Hz."""

    def info(self) -> dict[str, Any]:
        """Static facts about the system, written into the summary."""
        return {"name": self.name, "family": self.family, "point": self.point or self.name, "source": self.source,
                "sampling_rate": self.sampling_rate,
                "nominal_bitrate": self.bitrate, "waveform_matching": self.waveform_matching}


class TokenizerCodec(SpeechCodec):
    """A `CodecTokenizer` at one operating point.

    num_quantizers: codes per frame (RVQ codecs); quantization: keyword arguments passed to
    `tok.set_quantization(**quantization)` before every round trip (the hook for FSQ levels; codecs
    without that method raise `CodecError`). Bits: codecs with `compress` (entropy-coded), the payload
    bits of their real bitstreams, with the whole stream (header, CRC) as `container_bits`; else
    frames x bits per frame.
    """

    def __init__(self, tok, num_quantizers: int | None = None, quantization: dict[str, Any] | None = None,
                 family: str | None = None):
        self.tok = tok
        self.quantization = dict(quantization or {})
        if self.quantization and not getattr(tok, "supports_post_hoc_quantization", False):
            raise CodecError(f"codec {tok.name} has no set_quantization(): it cannot take "
                             f"{', '.join(f'{k}={v}' for k, v in self.quantization.items())}")
        self._apply()
        self.num_quantizers = tok.model.check_num_quantizers(num_quantizers) if num_quantizers is not None else None
        self.family = family or tok.name.replace("_", "-")
        self.sampling_rate = tok.sampling_rate
        k = self.num_quantizers
        self.entropy_coded = callable(getattr(tok, "compress", None))
        if self.entropy_coded:
            # The rate varies per utterance (measured from the bitstreams); the fixed-width size of the
            # integer latents is no nominal rate.
            self.bitrate = math.nan
        else:
            self.bitrate = float(tok.bitrate_for(k)) if k is not None else float(tok.bitrate)
        self.codebook_sizes = list(tok.config.codebook_sizes(k))
        self.frame_rate = float(tok.frame_rate)
        self.tokens_per_second = self.frame_rate * len(self.codebook_sizes)
        self.bits_per_frame = sum(math.ceil(math.log2(n)) for n in self.codebook_sizes)
        if k is not None:
            suffix = f"k={k}"
        elif self.quantization:
            suffix = ",".join(f"{key}={_short(v)}" for key, v in self.quantization.items())
        elif getattr(tok.config, "rd_lambda", None) is not None:  # entropy codecs: one model per lambda
            suffix = f"lambda={_short(float(tok.config.rd_lambda))}"
        else:
            suffix = "default"
        self.name = f"{self.family}@{suffix}"

    def _apply(self) -> None:
        if self.quantization:
            self.tok.set_quantization(**self.quantization)

    def roundtrip(self, audio: np.ndarray) -> RoundTrip:
        self._apply()
        if self.entropy_coded:
            # Entropy-coded codecs: the rate is that of the real range-coded payload, decoded from the bytes;
            # the whole stream (header, lengths, CRC) is the container size, as Ogg pages are for Opus.
            t0 = time.perf_counter()
            data, stats = self.tok.compress(audio, sampling_rate=self.sampling_rate, return_stats=True)
            t1 = time.perf_counter()
            decoded = self.tok.decode_stream(data) if hasattr(self.tok, "decode_stream") else None
            wav = decoded.audio if decoded is not None else self.tok.decompress(data)[0]
            t2 = time.perf_counter()
            changed = self._symbols_changed(np.asarray(decoded.codes), audio) if decoded is not None else None
            return RoundTrip(audio=np.asarray(wav, dtype=np.float32), bits=8 * stats.payload_bytes,
                             encode_seconds=t1 - t0, decode_seconds=t2 - t1, codes=None, container_bits=8 * len(data),
                             symbols_changed=changed)
        t0 = time.perf_counter()
        enc = self.tok(audio, sampling_rate=self.sampling_rate, num_quantizers=self.num_quantizers)
        t1 = time.perf_counter()
        wav = self.tok.batch_decode(enc)[0]
        t2 = time.perf_counter()
        codes = enc[0].numpy()
        bits = int(codes.shape[-1] * self.bits_per_frame)
        return RoundTrip(audio=np.asarray(wav, dtype=np.float32), bits=bits, encode_seconds=t1 - t0,
                         decode_seconds=t2 - t1, codes=codes, symbols_changed=self._symbols_changed(codes, audio))

    def _symbols_changed(self, codes: np.ndarray, audio: np.ndarray) -> float:
        """Share of the positions of `codes` (K, F) that differ from the codes of silence as long as `audio`
        (one extra encode, not timed)."""
        silent = self.tok(np.zeros_like(audio), sampling_rate=self.sampling_rate,
                          num_quantizers=self.num_quantizers)[0].numpy()
        return symbols_changed([(codes, silent)])

    def info(self) -> dict[str, Any]:
        return {**super().info(), "frame_rate": self.frame_rate, "tokens_per_second": self.tokens_per_second,
                "codebook_sizes": self.codebook_sizes, "num_quantizers": self.num_quantizers,
                "quantization": self.quantization, "config_hash": self.tok.config_hash}


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def operating_points(tok, num_quantizers: Sequence[int] | None = None,
                     levels: Sequence[Any] | None = None) -> list[TokenizerCodec]:
    """The codec's systems to evaluate: one per `num_quantizers` value and per `levels` value (a dict of
    `set_quantization` keywords, e.g. {"levels": 5, "stages": 2} or {"preset": "1x46656_400bps"}); just
    the default operating point when none is given. An entropy codec's operating point is its model
    (one model per lambda): pass several models."""
    points: list[TokenizerCodec] = [TokenizerCodec(tok, num_quantizers=k) for k in (num_quantizers or [])]
    points += [TokenizerCodec(tok, quantization=v if isinstance(v, dict) else {"levels": v}) for v in (levels or [])]
    return points or [TokenizerCodec(tok)]


def point_kinds(tok) -> set[str]:
    """Which operating-point flags a tokenizer can take: "num_quantizers" (more than one supported count,
    i.e. RVQ), "levels" (it has `set_quantization`)."""
    kinds = set()
    try:
        if len(tok.model.supported_num_quantizers()) > 1:
            kinds.add("num_quantizers")
    except NotImplementedError:
        pass
    if getattr(tok, "supports_post_hoc_quantization", False):
        kinds.add("levels")
    return kinds
