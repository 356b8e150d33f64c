"""Rate-Aware bitstreams: a versioned container around a range-coded payload.

Container (all integers little-endian):

    magic  b"RALC"            4 bytes
    format version            1 byte  (FORMAT_VERSION)
    header length H           4 bytes
    header                    H bytes, UTF-8 JSON: codec (model_type), config (config hash), weights
                              (weights digest), sr (Hz), samples, frames (y), z_frames, lambda
    payload length P          4 bytes
    payload                   P bytes, the range coder's 32-bit words
    CRC32                     4 bytes, over every byte before it

Payload: the symbols in decoding order (z channel by channel, then each y slice grouped by scale-table
index in ascending order, row-major inside a group), range coded with `constriction` (queue semantics:
decoded in the order written) under integer count tables.

A truncated, extended or corrupted stream raises `BitstreamError` (a `CodecError`) before any decoding.
"""

from __future__ import annotations

import json
import struct
import zlib

import constriction
import numpy as np

from ...utils.errors import CodecError

MAGIC = b"RALC"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<4sBI")
_U32 = struct.Struct("<I")


class BitstreamError(CodecError):
    """A stream that cannot be decoded: wrong magic or version, truncated, corrupted (CRC), or made by
    another model."""


def pack_stream(header: dict, payload: bytes) -> bytes:
    """Container bytes for a JSON-serialisable `header` and the coded `payload`."""
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(head)) + head + _U32.pack(len(payload)) + payload
    return body + _U32.pack(zlib.crc32(body))


def unpack_stream(data: bytes) -> tuple[dict, bytes]:
    """(header, payload) of a container; `BitstreamError` naming what is wrong otherwise."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError(f"a bitstream must be bytes, got {type(data).__name__}")
    data = bytes(data)
    n = len(data)
    if n < _PREFIX.size:
        raise BitstreamError(f"truncated stream: {n} bytes, shorter than the {_PREFIX.size}-byte prefix")
    magic, version, head_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise BitstreamError(f"not a rate-aware stream: magic {magic!r}, expected {MAGIC!r}")
    if version != FORMAT_VERSION:
        raise BitstreamError(f"unsupported format version {version} (this build reads version {FORMAT_VERSION})")
    pos = _PREFIX.size + head_len
    if n < pos + _U32.size:
        raise BitstreamError(f"truncated stream: {n} bytes, but the header alone needs {pos + _U32.size}")
    (payload_len,) = _U32.unpack_from(data, pos)
    expected = pos + _U32.size + payload_len + _U32.size
    if n != expected:
        what = "truncated" if n < expected else "overlong"
        raise BitstreamError(f"{what} stream: {n} bytes, its length fields say {expected}")
    (crc,) = _U32.unpack_from(data, expected - _U32.size)
    actual = zlib.crc32(data[: expected - _U32.size])
    if crc != actual:
        raise BitstreamError(f"corrupted stream: CRC32 {actual:#010x} does not match the stored {crc:#010x}")
    try:
        header = json.loads(data[_PREFIX.size : pos].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BitstreamError(f"unreadable stream header: {exc}") from exc
    if not isinstance(header, dict):
        raise BitstreamError(f"stream header is {type(header).__name__}, expected a JSON object")
    payload = data[pos + _U32.size : expected - _U32.size]
    if len(payload) % 4:
        raise BitstreamError(f"payload of {len(payload)} bytes is not a whole number of 32-bit words")
    return header, payload


def _model(counts: np.ndarray):
    # The counts already sum to 2**PRECISION with every entry >= 1; constriction rescales them to its
    # 24-bit precision deterministically, identically on both ends.
    return constriction.stream.model.Categorical(np.asarray(counts, dtype=np.float64), perfect=False)


class SymbolWriter:
    """Range-code groups of symbols, each group under one integer count table (n,)."""

    def __init__(self):
        self._encoder = constriction.stream.queue.RangeEncoder()
        self._models: dict = {}

    def write(self, symbols: np.ndarray, counts: np.ndarray, key) -> None:
        """symbols: 1-D integers in [0, n); `key` names the table (its model is built once)."""
        if symbols.size == 0:
            return
        if key not in self._models:
            self._models[key] = _model(counts)
        self._encoder.encode(np.ascontiguousarray(symbols, dtype=np.int32), self._models[key])

    def payload(self) -> bytes:
        return self._encoder.get_compressed().astype("<u4").tobytes()


class SymbolReader:
    """Decode what a `SymbolWriter` wrote, group by group, with the same tables."""

    def __init__(self, payload: bytes):
        self._decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
        self._models: dict = {}

    def read(self, count: int, counts: np.ndarray, key) -> np.ndarray:
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        if key not in self._models:
            self._models[key] = _model(counts)
        return self._decoder.decode(self._models[key], int(count)).astype(np.int64)

    def finish(self) -> None:
        """Raise `BitstreamError` if coded data is left over (a stream decoded with the wrong tables)."""
        if not self._decoder.maybe_exhausted():
            raise BitstreamError("payload has data left after the last symbol: the stream does not match this model")
