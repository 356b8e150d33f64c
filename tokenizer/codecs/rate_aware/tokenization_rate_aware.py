"""`RateAwareTokenizer`: the usual codes API plus real bitstreams.

    tok = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("rate-aware", preset="tiny"))
    data = tok.compress(wave, sampling_rate=16000)            # bytes (a list of bytes for a list input)
    data, stats = tok.compress(wave, sampling_rate=16000, return_stats=True)
    audio, sr = tok.decompress(data)                          # float32 (T,), Hz

Each utterance is coded alone (batch size 1), so its bytes never depend on what it is batched with.
`stats.bits_per_second` is the utterance's actual rate (whole stream); `stats.estimated_bits` the
ideal size under the same integer tables (sum of -log2 p), which the payload matches to well under 1%.

Codes (`tok(audio)`) are the same integer symbols the stream carries (layout: see modeling_rate_aware).
`bitrate` is nominal: the code tensor stored with fixed-length symbols (frame_rate x num_quantizers x
log2(codebook_size)), an upper bound; the entropy-coded rate is data dependent and much lower.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from ...audio import AudioInput, pad_batch, prepare_audio
from ...tokenization import CodecTokenizer
from .bitstream import BitstreamError, SymbolReader, SymbolWriter, pack_stream, unpack_stream
from .entropy import table_bits


@dataclass
class CompressionStats:
    """Sizes of one compressed utterance. Bytes are whole-stream bytes; bits are bits."""

    num_samples: int
    sampling_rate: int
    total_bytes: int
    payload_bytes: int
    estimated_bits_y: float
    estimated_bits_z: float

    @property
    def seconds(self) -> float:
        return self.num_samples / self.sampling_rate

    @property
    def overhead_bytes(self) -> int:
        """Container bytes around the payload (magic, version, header, lengths, CRC)."""
        return self.total_bytes - self.payload_bytes

    @property
    def estimated_bits(self) -> float:
        """Ideal payload size: -log2 probability of every symbol under the coding tables."""
        return self.estimated_bits_y + self.estimated_bits_z

    @property
    def bits_per_second(self) -> float:
        """Actual rate of the whole stream (header included)."""
        return 8 * self.total_bytes / self.seconds

    @property
    def payload_bits_per_second(self) -> float:
        return 8 * self.payload_bytes / self.seconds

    @property
    def estimated_bits_per_second(self) -> float:
        return self.estimated_bits / self.seconds


@dataclass
class StreamDecoding:
    """A decoded stream: audio float32 (T,) at `sampling_rate` Hz, its codes (K, F) int64 (the layout of
    `tok(audio).codes`) and the stream header."""

    audio: np.ndarray
    sampling_rate: int
    codes: torch.Tensor
    header: dict


class RateAwareTokenizer(CodecTokenizer):
    """`CodecTokenizer` for the rate-aware codec, adding `compress` / `decompress` (bitstreams) and
    windows aligned to the hyperprior stride for long audio."""

    # ----------------------------------------------------------------- bitstreams
    def compress(self, audio: AudioInput, sampling_rate: int | None = None, return_stats: bool = False):
        """Audio -> bitstream bytes. A single clip (1-D array/tensor or one path) gives `bytes`, a batch
        (list, (B, C, T)) gives `list[bytes]`; with `return_stats` also `CompressionStats` (or a list)."""
        single = _is_single(audio)
        clips = prepare_audio(audio, sampling_rate, self.sampling_rate)
        self.model.update_entropy_tables()
        out = [self._compress_clip(c) for c in clips]
        data = [d for d, _ in out]
        stats = [s for _, s in out]
        if single:
            data, stats = data[0], stats[0]
        return (data, stats) if return_stats else data

    def decompress(self, data: bytes) -> tuple[np.ndarray, int]:
        """Bitstream -> (audio float32 (T,), sampling rate in Hz). Raises `BitstreamError` (a `CodecError`)
        for truncated, corrupted or foreign streams."""
        out = self.decode_stream(data)
        return out.audio, out.sampling_rate

    @torch.no_grad()
    def _compress_clip(self, clip: np.ndarray) -> tuple[bytes, CompressionStats]:
        model, c = self.model, self.config
        num_samples = len(clip)
        min_len = model.min_input_samples
        if len(clip) < min_len:  # as in `__call__`: short items are coded as zero-padded to the minimum
            clip = np.pad(clip, (0, min_len - len(clip)))
        batch = pad_batch([clip], self.sampling_rate, multiple=self.hop_length)
        q, z_sym, _, ctx = model.quantize(batch.audio.to(self.device), batch.lengths.to(self.device))
        m = c.symbol_offset
        q, z_sym, index = q[0].cpu(), z_sym[0].cpu(), ctx.scale_index[0].cpu()
        prior, gauss = model.prior_counts.cpu(), model.gaussian_counts.cpu()

        writer = SymbolWriter()
        for ch in range(c.hyper_latent_dim):
            writer.write((z_sym[ch] + m).numpy(), prior[ch].numpy(), ("z", ch))
        bits_z = float(table_bits(prior, torch.arange(c.hyper_latent_dim)[:, None], z_sym, m).sum())
        for i in range(c.num_slices):
            sl = model.entropy.slice(i)
            for s in torch.unique(index[sl]).tolist():  # ascending: the decoder walks the same order
                writer.write((q[sl][index[sl] == s] + m).numpy(), gauss[s].numpy(), ("y", s))
        bits_y = float(table_bits(gauss, index, q, m).sum())
        payload = writer.payload()
        # Only what decoding needs or must check; everything else follows from the config the hash names.
        header = {
            "codec": c.model_type, "config": c.config_hash(), "weights": model.weights_digest(),
            "sr": self.sampling_rate, "samples": num_samples, "frames": int(q.shape[-1]),
            "z_frames": int(z_sym.shape[-1]), "lambda": c.rd_lambda,
        }
        data = pack_stream(header, payload)
        return data, CompressionStats(num_samples, self.sampling_rate, len(data), len(payload), bits_y, bits_z)

    @torch.no_grad()
    def decode_stream(self, data: bytes) -> StreamDecoding:
        """Bitstream -> `StreamDecoding(audio, sampling_rate, codes, header)`."""
        header, payload = unpack_stream(data)
        self.model.update_entropy_tables()  # before the weights digest, which covers the tables
        self._check_header(header)
        model, c = self.model, self.config
        m, frames, z_frames = c.symbol_offset, header["frames"], header["z_frames"]
        prior, gauss = model.prior_counts.cpu(), model.gaussian_counts.cpu()
        reader = SymbolReader(payload)
        z_sym = torch.stack([torch.from_numpy(reader.read(z_frames, prior[ch].numpy(), ("z", ch)))
                             for ch in range(c.hyper_latent_dim)]) - m
        ctx = model.latent_context(z_sym[None].to(self.device), frames)
        q = torch.zeros(c.latent_dim, frames, dtype=torch.long)
        for i in range(c.num_slices):
            sl = model.entropy.slice(i)
            _, index = ctx.slice_parameters(i)
            index = index[0].cpu()
            part = torch.zeros_like(index)
            for s in torch.unique(index).tolist():
                where = index == s
                part[where] = torch.from_numpy(reader.read(int(where.sum()), gauss[s].numpy(), ("y", s))) - m
            q[sl] = part
            ctx.set_slice(i, part[None].to(self.device))
        reader.finish()
        audio = model.synthesize_context(ctx)[0, 0, : header["samples"]].float().cpu().numpy()
        codes = model.pack_codes(q[None], z_sym[None])[0]
        return StreamDecoding(audio=audio, sampling_rate=int(header["sr"]), codes=codes, header=header)

    def _check_header(self, header: dict) -> None:
        c = self.config
        try:
            if header["codec"] != c.model_type:
                raise BitstreamError(f"stream of codec {header['codec']!r}, this tokenizer is {c.model_type!r}")
            if header["config"] != c.config_hash():
                raise BitstreamError(f"stream made by config {header['config']}, this tokenizer has "
                                     f"{c.config_hash()}")
            if header["weights"] != self.model.weights_digest():
                raise BitstreamError(f"stream made by weights {header['weights']}, this tokenizer has "
                                     f"{self.model.weights_digest()}")
            frames, z_frames, n = int(header["frames"]), int(header["z_frames"]), int(header["samples"])
            if int(header["sr"]) != self.sampling_rate:
                raise BitstreamError(f"stream at {header['sr']} Hz, this tokenizer runs at {self.sampling_rate} Hz")
        except (KeyError, TypeError, ValueError) as exc:
            raise BitstreamError(f"stream header is missing or has a bad field: {exc!r}") from exc
        padded = max(n, self.model.min_input_samples)
        if n < 1 or frames != math.ceil(padded / self.hop_length) or z_frames != math.ceil(frames / c.hyper_stride):
            raise BitstreamError(f"inconsistent stream header: {n} samples, {frames} frames, {z_frames} z frames")

    # ----------------------------------------------------------------- long audio
    def _aligned(self, seconds: float) -> int:
        """Frames in `seconds` rounded down to a multiple of the hyperprior stride (at least one stride), so
        window starts fall on z frame boundaries and windows never grow past what was asked."""
        r = self.config.hyper_stride
        return max(r, int(seconds * self.frame_rate // r) * r)

    def _window(self, chunk_seconds: float, context_seconds: float) -> tuple[int, int]:
        return self._aligned(chunk_seconds), (self._aligned(context_seconds) if context_seconds > 0 else 0)


def _is_single(audio) -> bool:
    if isinstance(audio, (str, os.PathLike)):
        return True
    return isinstance(audio, (np.ndarray, torch.Tensor)) and audio.ndim == 1
