"""Classic codec baselines behind the `SpeechCodec` round-trip interface: Opus and Codec2.

- Opus (RFC 6716) through `opusenc` / `opusdec` (Debian `opus-tools`, libopus), VBR at the target
  rate, 16 kHz in and out. The decoder removes the pre-skip, so the output is sample-aligned.
  Actual bits: the Opus audio packets in the Ogg file (the two header packets and the Ogg page
  framing are left out: they are a constant per file, and real-time transports such as RTP carry bare
  packets). The whole file size is kept as `container_bits`.
- Codec2 (Rowe) through `c2enc` / `c2dec` (Debian `codec2`), modes 3200 / 2400 / 1600 / 1400 / 1300 /
  1200 / 700C / 450, 8 kHz 16-bit raw in and out. Parametric (sinusoidal/vocoder): the waveform is
  not reproduced, so SI-SDR is NaN, and the output is delayed by about 20 ms, which the evaluator
  removes by cross-correlating amplitude envelopes (`align_to_reference`). Actual bits: the size of
  the headerless bit file, where each frame is padded to whole bytes (700C: 28 bits per 40 ms frame
  stored in 4 bytes, so 800 bps are measured for a nominal 700).

`parse_baseline("opus:6")`, `parse_baseline("codec2:1200")` build them from the command line.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from tokenizer.audio import resample
from tokenizer.utils.errors import CodecError
from .deps import require_program
from .systems import RoundTrip, SpeechCodec

CODEC2_MODES = {"3200": 3200, "2400": 2400, "1600": 1600, "1400": 1400, "1300": 1300, "1200": 1200,
                "700C": 700, "450": 450}


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CodecError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")


def _to_int16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(np.asarray(audio, dtype=np.float64), -1.0, 32767 / 32768) * 32768).astype(np.int16)


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad a 1-D signal to `n` samples."""
    return x[:n] if len(x) >= n else np.pad(x, (0, n - len(x)))


def ogg_packet_sizes(data: bytes) -> list[int]:
    """Sizes in bytes of the packets in an Ogg stream (RFC 3533): each page is a 27-byte header, a
    segment table of lacing values, then the segments; a packet ends at a lacing value below 255."""
    sizes, pos, current = [], 0, 0
    while pos < len(data):
        if data[pos:pos + 4] != b"OggS":
            raise CodecError(f"not an Ogg page at byte {pos}")
        n_segments = data[pos + 26]
        table = data[pos + 27:pos + 27 + n_segments]
        pos += 27 + n_segments
        for lace in table:
            current += lace
            pos += lace
            if lace < 255:
                sizes.append(current)
                current = 0
    return sizes


class OpusBaseline(SpeechCodec):
    """Opus at `bitrate_kbps` (VBR, complexity 10) with 16 kHz input and output."""

    family = "opus"

    def __init__(self, bitrate_kbps: float, sampling_rate: int = 16000):
        if not 0.5 <= bitrate_kbps <= 512:
            raise CodecError(f"opus bitrate must be 0.5..512 kbps, got {bitrate_kbps}")
        self.encoder = require_program("opusenc", "opus-tools")
        self.decoder = require_program("opusdec", "opus-tools")
        self.kbps = float(bitrate_kbps)
        self.sampling_rate = int(sampling_rate)
        self.bitrate = self.kbps * 1000
        self.name = f"opus:{self.kbps:g}"

    def roundtrip(self, audio: np.ndarray) -> RoundTrip:
        with tempfile.TemporaryDirectory(prefix="opus-") as tmp:
            src, coded, out = Path(tmp, "in.wav"), Path(tmp, "coded.opus"), Path(tmp, "out.wav")
            sf.write(src, _to_int16(audio), self.sampling_rate, subtype="PCM_16")
            t0 = time.perf_counter()
            _run([self.encoder, "--quiet", "--bitrate", f"{self.kbps:g}", "--comp", "10", str(src), str(coded)])
            t1 = time.perf_counter()
            _run([self.decoder, "--quiet", "--rate", str(self.sampling_rate), str(coded), str(out)])
            t2 = time.perf_counter()
            data = coded.read_bytes()
            decoded, _ = sf.read(out, dtype="float32")
        payload = sum(ogg_packet_sizes(data)[2:])  # packets 0 and 1 are OpusHead and OpusTags
        decoded = decoded if decoded.ndim == 1 else decoded.mean(axis=1)
        return RoundTrip(audio=fit_length(decoded, len(audio)), bits=8 * payload, encode_seconds=t1 - t0,
                         decode_seconds=t2 - t1, container_bits=8 * len(data))


class Codec2Baseline(SpeechCodec):
    """Codec2 in one of `CODEC2_MODES` ("700C", "1200", "2400", "3200", ...), 8 kHz."""

    family = "codec2"
    waveform_matching = False
    align_delay = True
    sampling_rate = 8000

    def __init__(self, mode: str):
        mode = str(mode).upper()
        if mode not in CODEC2_MODES:
            raise CodecError(f"unknown codec2 mode {mode!r}; known: {', '.join(CODEC2_MODES)}")
        self.encoder = require_program("c2enc", "codec2")
        self.decoder = require_program("c2dec", "codec2")
        self.mode = mode
        self.bitrate = float(CODEC2_MODES[mode])
        self.name = f"codec2:{mode}"

    def roundtrip(self, audio: np.ndarray) -> RoundTrip:
        with tempfile.TemporaryDirectory(prefix="codec2-") as tmp:
            src, coded, out = Path(tmp, "in.raw"), Path(tmp, "coded.bit"), Path(tmp, "out.raw")
            _to_int16(audio).tofile(src)
            t0 = time.perf_counter()
            _run([self.encoder, self.mode, str(src), str(coded)])
            t1 = time.perf_counter()
            _run([self.decoder, self.mode, str(coded), str(out)])
            t2 = time.perf_counter()
            size = coded.stat().st_size
            decoded = np.fromfile(out, dtype=np.int16).astype(np.float32) / 32768
        return RoundTrip(audio=fit_length(decoded, len(audio)), bits=8 * size, encode_seconds=t1 - t0,
                         decode_seconds=t2 - t1, container_bits=8 * size)


def parse_baseline(spec: str) -> SpeechCodec:
    """`opus:KBPS` (e.g. "opus:6") or `codec2:MODE` (e.g. "codec2:1200", "codec2:700C")."""
    name, _, value = str(spec).partition(":")
    name = name.strip().lower()
    if name == "opus" and value:
        try:
            return OpusBaseline(float(value))
        except ValueError:
            raise CodecError(f"bad opus bitrate in baseline {spec!r}: expected opus:KBPS, e.g. opus:6") from None
    if name == "codec2" and value:
        return Codec2Baseline(value)
    raise CodecError(f"unknown baseline {spec!r}: expected opus:KBPS (e.g. opus:6) or codec2:MODE "
                     f"(modes {', '.join(CODEC2_MODES)})")


def _envelope(x: np.ndarray, sr: int) -> np.ndarray:
    """Amplitude envelope (|analytic signal| low-passed at 50 Hz), mean removed."""
    from scipy.signal import butter, hilbert, sosfiltfilt

    env = sosfiltfilt(butter(2, 50, fs=sr, output="sos"), np.abs(hilbert(x)))
    return env - env.mean()


def estimate_delay(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int, max_delay: float = 0.1,
                   envelope: bool = False) -> int:
    """Lag in samples (positive: `degraded` is late) maximising the cross-correlation, searched within
    +-`max_delay` seconds. envelope=True correlates amplitude envelopes instead of waveforms: parametric
    codecs do not keep the phase, so their waveform correlation peaks are unreliable."""
    from scipy.signal import correlate, correlation_lags

    ref = np.asarray(reference, dtype=np.float64)
    deg = np.asarray(degraded, dtype=np.float64)
    if envelope:
        ref, deg = _envelope(ref, sampling_rate), _envelope(deg, sampling_rate)
    corr = correlate(deg, ref, mode="full", method="fft")
    lags = correlation_lags(len(deg), len(ref), mode="full")
    window = np.abs(lags) <= int(max_delay * sampling_rate)
    return int(lags[window][np.argmax(corr[window])])


def align_to_reference(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int,
                       max_delay: float = 0.1, envelope: bool = False) -> tuple[np.ndarray, int]:
    """Shift `degraded` by its estimated delay (see `estimate_delay`) and cut/zero-pad it to the
    reference's length. Returns (aligned (T,), delay in samples)."""
    lag = estimate_delay(reference, degraded, sampling_rate, max_delay, envelope)
    deg = np.asarray(degraded, dtype=np.float32)
    shifted = deg[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag, dtype=np.float32), deg])
    return fit_length(shifted, len(reference)), lag


def roundtrip_at(codec: SpeechCodec, audio: np.ndarray, sampling_rate: int) -> RoundTrip:
    """Round-trip a clip given at `sampling_rate`, resampling in and out of the codec's rate."""
    result = codec.roundtrip(resample(np.asarray(audio, dtype=np.float32), sampling_rate, codec.sampling_rate))
    result.audio = resample(result.audio, codec.sampling_rate, sampling_rate)
    return result
