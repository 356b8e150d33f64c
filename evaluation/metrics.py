"""Codec quality metrics: each a small function of a reference and a degraded 1-D signal.

Every intrusive metric takes `(reference, degraded, sampling_rate)` — float arrays (T,) in [-1, 1] at
`sampling_rate` Hz — and returns a float; the non-intrusive ones (DNSMOS, UTMOS) take only the
degraded signal. Signals of unequal length are cut to the shorter one. Each metric resamples to the
rate it is defined at (below), so callers may pass any rate.

| name | definition | best | library |
|---|---|---|---|
| `pesq_wb` | ITU-T P.862.2 wide-band PESQ (MOS-LQO) at 16 kHz | 4.64 | `pesq` |
| `pesq_nb` | ITU-T P.862 narrow-band PESQ (MOS-LQO, P.862.1 mapping) at 8 kHz | 4.55 | `pesq` |
| `stoi` / `estoi` | short-time objective intelligibility (Taal 2011) / extended (Jensen 2016), 10 kHz | 1 | `pystoi` |
| `si_sdr` | scale-invariant SDR in dB (Le Roux 2019) on zero-mean signals | large | numpy |
| `visqol` | ViSQOL v3 speech mode MOS-LQO at 16 kHz, lattice mapping | ~4.5 | `visqol-python[lattice]` |
| `mel_distance` | Stable Codec (Parker 2024) app. D: Hann 2048 / hop 256 / 128 mels | 0 | numpy + librosa filterbank |
| `stft_distance` | same on linear magnitudes, Hann 2048 / hop 512 | 0 | numpy |
| `vuv_f1` | F1 of voiced/unvoiced decisions of pYIN on degraded vs reference | 1 | `librosa.pyin` |
| `spk_sim` | cosine similarity of speaker embeddings (resemblyzer by default) | 1 | see `speaker.py` |
| `dnsmos` | DNSMOS P.835 SIG/BAK/OVRL and P.808 MOS at 16 kHz (non-intrusive) | ~4.x | `speechmos` (ONNX) |
| `utmos` | UTMOS from weights the user provides (non-intrusive) | ~4.x | torch / onnxruntime |

`METRICS` maps each name to a `MetricSpec` (columns, direction, whether it needs a reference);
`compute_metrics` evaluates a list of them on one pair.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from tokenizer.audio import resample
from tokenizer.errors import CodecError
from .deps import require

logger = logging.getLogger(__name__)

PESQ_SR = 16000
EPS = 1e-8


def _pair(reference: np.ndarray, degraded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    deg = np.asarray(degraded, dtype=np.float64).reshape(-1)
    if ref.size == 0 or deg.size == 0:
        raise CodecError(f"cannot score empty audio (reference {ref.size} samples, degraded {deg.size} samples)")
    n = min(ref.size, deg.size)
    return ref[:n], deg[:n]


def _at(x: np.ndarray, sr: int, target: int) -> np.ndarray:
    return resample(np.asarray(x, dtype=np.float32), sr, target).astype(np.float64)


# ------------------------------------------------------------------------------------ waveform
def si_sdr(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int | None = None) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019).

    Both signals are made zero-mean; target = a * ref with a = <deg, ref> / ||ref||^2;
    SI-SDR = 10 log10(||target||^2 / ||deg - target||^2). A small epsilon (1e-8) keeps identical signals
    finite (very large). Meaningless for parametric codecs (codec2): they do not reproduce the waveform.
    """
    ref, deg = _pair(reference, degraded)
    ref, deg = ref - ref.mean(), deg - deg.mean()
    scale = (deg @ ref + EPS) / (ref @ ref + EPS)
    target = scale * ref
    noise = deg - target
    return float(10 * np.log10((target @ target + EPS) / (noise @ noise + EPS)))


# ------------------------------------------------------------------------------------ PESQ / STOI
def _pesq(reference, degraded, sampling_rate: int, rate: int, mode: str) -> float:
    pesq_module = require("pesq")

    ref, deg = _pair(_at(reference, sampling_rate, rate), _at(degraded, sampling_rate, rate))
    try:
        return float(pesq_module.pesq(rate, ref, deg, mode))
    except pesq_module.PesqError as exc:
        # No speech found (silent reference or output, e.g. an untrained codec) or a clip too short
        # for PESQ's alignment: no score exists.
        logger.warning("PESQ (%s) cannot score this pair (%s): NaN", mode, type(exc).__name__)
        return float("nan")


def pesq_wb(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int) -> float:
    """Wide-band PESQ (ITU-T P.862.2) at 16 kHz, MOS-LQO in [1.04, 4.64]; higher is better."""
    return _pesq(reference, degraded, sampling_rate, 16000, "wb")


def pesq_nb(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int) -> float:
    """Narrow-band PESQ (ITU-T P.862 + P.862.1 mapping) on 8 kHz resampled signals, MOS-LQO in [1.02, 4.55]."""
    return _pesq(reference, degraded, sampling_rate, 8000, "nb")


def stoi(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int, extended: bool = False) -> float:
    """STOI (Taal et al. 2011), or ESTOI (Jensen & Taal 2016) with `extended=True`, in [0, 1]
    (pystoi resamples to 10 kHz and drops silent frames)."""
    _stoi = require("pystoi").stoi

    ref, deg = _pair(reference, degraded)
    return float(_stoi(ref, deg, sampling_rate, extended=extended))


def estoi(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int) -> float:
    """Extended STOI (Jensen & Taal 2016), in [0, 1]."""
    return stoi(reference, degraded, sampling_rate, extended=True)


# ------------------------------------------------------------------------------------ ViSQOL
@functools.lru_cache(maxsize=1)
def _visqol_api():
    require("visqol")
    require("ai_edge_litert")  # runtime of the lattice MOS mapper (the [lattice] extra)
    from visqol import VisqolApi

    api = VisqolApi()
    # Speech mode at 16 kHz; the lattice mapper (from the [lattice] extra) gives the C++ tool's scores.
    api.create(mode="speech", use_lattice_model=True)
    return api


def visqol(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int) -> float:
    """ViSQOL v3 speech mode (16 kHz, voice-activity based, deep-lattice MOS mapping): MOS-LQO, ~1..4.75."""
    ref, deg = _pair(_at(reference, sampling_rate, 16000), _at(degraded, sampling_rate, 16000))
    return float(_visqol_api().measure_from_arrays(ref, deg, 16000).moslqo)


# ------------------------------------------------------------------------------------ spectral distances
def _stft_mag(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    librosa = require("librosa")

    return np.abs(librosa.stft(x.astype(np.float32), n_fft=n_fft, hop_length=hop, window="hann", center=True))


def _log_l1_plus_sc(ref_mag: np.ndarray, deg_mag: np.ndarray, floor: float = 1e-5) -> float:
    """L1 between natural-log magnitudes (floored at 1e-5) + spectral convergence ||R - D||_F / ||R||_F."""
    log_l1 = np.mean(np.abs(np.log(np.maximum(deg_mag, floor)) - np.log(np.maximum(ref_mag, floor))))
    sc = np.linalg.norm(ref_mag - deg_mag) / max(np.linalg.norm(ref_mag), EPS)
    return float(log_l1 + sc)


def mel_distance(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int,
                 n_fft: int = 2048, hop_length: int = 256, n_mels: int = 128) -> float:
    """Mel distance of Stable Codec (Parker et al. 2024, appendix D): on 128-band mel magnitudes of a
    Hann-2048 / hop-256 STFT (librosa Slaney filterbank, 0 Hz to Nyquist), the sum of the L1 distance of
    log magnitudes and the spectral convergence of the linear magnitudes. 0 for identical signals."""
    librosa = require("librosa")

    ref, deg = _pair(reference, degraded)
    fb = librosa.filters.mel(sr=sampling_rate, n_fft=n_fft, n_mels=n_mels)
    return _log_l1_plus_sc(fb @ _stft_mag(ref, n_fft, hop_length), fb @ _stft_mag(deg, n_fft, hop_length))


def stft_distance(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int | None = None,
                  n_fft: int = 2048, hop_length: int = 512) -> float:
    """STFT distance of Stable Codec (appendix D): as `mel_distance` on linear magnitudes of a
    Hann-2048 / hop-512 STFT. 0 for identical signals."""
    ref, deg = _pair(reference, degraded)
    return _log_l1_plus_sc(_stft_mag(ref, n_fft, hop_length), _stft_mag(deg, n_fft, hop_length))


# ------------------------------------------------------------------------------------ pitch
_VOICING_CACHE: dict[tuple, np.ndarray] = {}


def voicing(audio: np.ndarray, sampling_rate: int, fmin: float = 50.0, fmax: float = 550.0) -> np.ndarray:
    """Voiced flags (bool, one per 10 ms frame) of pYIN (Mauch & Dixon 2014, `librosa.pyin`) on the
    signal resampled to 16 kHz, 64 ms frames, f0 searched in [fmin, fmax] Hz.

    pYIN costs about 0.2 s per second of audio, and an evaluation compares one reference with many
    reconstructions, so the last few results are kept, keyed by a hash of the samples."""
    librosa = require("librosa")

    x = _at(audio, sampling_rate, 16000).astype(np.float32)
    key = (hashlib.sha1(x.tobytes()).hexdigest(), fmin, fmax)
    if key not in _VOICING_CACHE:
        _, voiced, _ = librosa.pyin(x, fmin=fmin, fmax=fmax, sr=16000, frame_length=1024, hop_length=160)
        if len(_VOICING_CACHE) >= 8:
            _VOICING_CACHE.pop(next(iter(_VOICING_CACHE)))
        _VOICING_CACHE[key] = np.asarray(voiced, dtype=bool)
    return _VOICING_CACHE[key]


def vuv_f1(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int) -> float:
    """F1 score of the degraded signal's voiced frames against the reference's (pYIN, see `voicing`):
    2 TP / (2 TP + FP + FN), voiced = positive. 1 when the voicing agrees everywhere; NaN when neither
    signal has a voiced frame."""
    ref, deg = _pair(reference, degraded)
    a, b = voicing(ref, sampling_rate), voicing(deg, sampling_rate)
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    tp, fp, fn = int(np.sum(a & b)), int(np.sum(~a & b)), int(np.sum(a & ~b))
    return float("nan") if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


# ------------------------------------------------------------------------------------ speaker
def speaker_similarity(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int,
                       backend: str = "resemblyzer") -> float:
    """Cosine similarity of speaker embeddings of the two signals (backend: see `speaker.py`), in [-1, 1]."""
    from .speaker import get_speaker_encoder

    return get_speaker_encoder(backend).similarity(reference, degraded, sampling_rate)


# ------------------------------------------------------------------------------------ MOS predictors
def dnsmos(degraded: np.ndarray, sampling_rate: int) -> dict[str, float]:
    """DNSMOS (Reddy et al. 2022), the ONNX models shipped in `speechmos`: P.835 `sig` (speech), `bak`
    (background), `ovrl` (overall) and P.808 `p808` MOS, each about 1..5, at 16 kHz. Clips shorter than
    9 s are tiled to 9 s by speechmos; longer ones are scored on 9 s windows with a 1 s hop and averaged."""
    require("onnxruntime")
    _dnsmos = require("speechmos.dnsmos")

    x = np.clip(_at(degraded, sampling_rate, 16000), -1.0, 1.0)
    out = _dnsmos.run(x, 16000)
    return {"dnsmos_ovrl": float(out["ovrl_mos"]), "dnsmos_sig": float(out["sig_mos"]),
            "dnsmos_bak": float(out["bak_mos"]), "dnsmos_p808": float(out["p808_mos"])}


class UTMOSPredictor:
    """UTMOS (Saeki et al. 2022) from local weights. Its packages download weights at run time, which
    fails offline, so the user points to a file:

    - `*.onnx`: an ONNX export; its first input takes float32 (1, T) audio at `sampling_rate` (16 kHz)
      and its first output is the MOS (any shape; the mean is taken).
    - `*.pt` / `*.pth.jit` / `*.torchscript` / `*.jit`: a TorchScript module (`torch.jit.load`, not
      pickle) called as `model(wave)` with wave FloatTensor (1, T), or `model(wave, sampling_rate)` when
      it takes the rate too; returns the MOS.
    - `*.safetensors`: a state dict, loaded (strict) into the `torch.nn.Module` that
      `model_factory()` builds (the architecture is the user's; weights are never unpickled).

    A missing path or an unsupported suffix raises `CodecError` naming the path.
    """

    def __init__(self, path: str | os.PathLike, model_factory: Callable[[], object] | None = None,
                 sampling_rate: int = 16000):
        self.path = Path(path).expanduser()
        self.sampling_rate = sampling_rate
        if not self.path.is_file():
            raise CodecError(f"UTMOS weights not found: {self.path} (pass a local .onnx, TorchScript or "
                             ".safetensors file; UTMOS cannot be downloaded here)")
        suffix = self.path.name.lower()
        if suffix.endswith(".onnx"):
            ort = require("onnxruntime")

            self._session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
            self.kind = "onnx"
        elif suffix.endswith((".pt", ".jit", ".torchscript")):
            import torch

            self._model = torch.jit.load(str(self.path), map_location="cpu").eval()
            self.kind = "torchscript"
        elif suffix.endswith(".safetensors"):
            if model_factory is None:
                raise CodecError(f"{self.path} holds only weights: pass model_factory= that builds the UTMOS module")
            from safetensors.torch import load_file

            self._model = model_factory()
            self._model.load_state_dict(load_file(str(self.path)), strict=True)
            self._model.eval()
            self.kind = "safetensors"
        else:
            raise CodecError(f"unsupported UTMOS weights {self.path}: expected .onnx, .pt / .jit / .torchscript "
                             "or .safetensors")

    def __call__(self, degraded: np.ndarray, sampling_rate: int) -> float:
        """MOS of one clip (T,) at `sampling_rate` Hz."""
        x = _at(degraded, sampling_rate, self.sampling_rate).astype(np.float32)[None]
        if self.kind == "onnx":
            name = self._session.get_inputs()[0].name
            return float(np.mean(self._session.run(None, {name: x})[0]))
        import torch

        with torch.inference_mode():
            wave = torch.from_numpy(x)
            try:
                out = self._model(wave)
            except (TypeError, RuntimeError):
                out = self._model(wave, self.sampling_rate)
        return float(torch.as_tensor(out, dtype=torch.float32).mean())


# ------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class MetricSpec:
    """A metric's name, output columns, direction and whether it compares with a reference."""

    name: str
    columns: tuple[str, ...]
    higher_is_better: bool
    intrusive: bool
    waveform: bool = False  # compares waveforms sample by sample (NaN for parametric codecs)
    label: str = ""


METRICS: dict[str, MetricSpec] = {m.name: m for m in [
    MetricSpec("pesq_wb", ("pesq_wb",), True, True, label="PESQ-WB"),
    MetricSpec("pesq_nb", ("pesq_nb",), True, True, label="PESQ-NB"),
    MetricSpec("stoi", ("stoi",), True, True, label="STOI"),
    MetricSpec("estoi", ("estoi",), True, True, label="ESTOI"),
    MetricSpec("si_sdr", ("si_sdr",), True, True, waveform=True, label="SI-SDR (dB)"),
    MetricSpec("visqol", ("visqol",), True, True, label="ViSQOL"),
    MetricSpec("mel_distance", ("mel_distance",), False, True, label="Mel dist."),
    MetricSpec("stft_distance", ("stft_distance",), False, True, label="STFT dist."),
    MetricSpec("vuv_f1", ("vuv_f1",), True, True, label="V/UV F1"),
    MetricSpec("spk_sim", ("spk_sim",), True, True, label="Spk. sim."),
    MetricSpec("dnsmos", ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"), True, False, label="DNSMOS"),
    MetricSpec("utmos", ("utmos",), True, False, label="UTMOS"),
]}

DEFAULT_CODEC_METRICS = ("pesq_wb", "pesq_nb", "stoi", "si_sdr", "visqol", "mel_distance", "stft_distance",
                         "vuv_f1", "spk_sim", "dnsmos")

COLUMN_LABELS = {c: (m.label if len(m.columns) == 1 else f"{m.label} {c.split('_')[-1].upper()}")
                 for m in METRICS.values() for c in m.columns}
HIGHER_IS_BETTER = {c: m.higher_is_better for m in METRICS.values() for c in m.columns}


def check_metrics(names: Sequence[str]) -> list[str]:
    """Validate metric names (raises `CodecError` listing the known ones); returns them de-duplicated."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise CodecError(f"unknown metric(s) {unknown}; known: {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


def metric_columns(names: Sequence[str]) -> list[str]:
    return [c for n in check_metrics(names) for c in METRICS[n].columns]


def compute_metrics(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int, names: Sequence[str],
                    waveform_matching: bool = True, speaker_backend: str = "resemblyzer",
                    utmos: UTMOSPredictor | None = None) -> dict[str, float]:
    """Evaluate the metrics `names` on one (reference, degraded) pair at `sampling_rate` Hz.

    waveform_matching=False (parametric codecs) gives NaN for waveform metrics (SI-SDR).
    Returns {column: value}; columns as in `metric_columns(names)`.
    """
    out: dict[str, float] = {}
    for name in check_metrics(names):
        spec = METRICS[name]
        if spec.waveform and not waveform_matching:
            out.update({c: math.nan for c in spec.columns})
        elif name == "dnsmos":
            out.update(dnsmos(degraded, sampling_rate))
        elif name == "utmos":
            if utmos is None:
                raise CodecError("metric 'utmos' needs local weights: pass --utmos-weights PATH")
            out["utmos"] = utmos(degraded, sampling_rate)
        elif name == "spk_sim":
            out["spk_sim"] = speaker_similarity(reference, degraded, sampling_rate, speaker_backend)
        elif name == "estoi":
            out["estoi"] = estoi(reference, degraded, sampling_rate)
        else:
            out[name] = _PAIR_FUNCTIONS[name](reference, degraded, sampling_rate)
    return out


_PAIR_FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray, int], float]] = {
    "pesq_wb": pesq_wb, "pesq_nb": pesq_nb, "stoi": stoi, "si_sdr": si_sdr, "visqol": visqol,
    "mel_distance": mel_distance, "stft_distance": stft_distance, "vuv_f1": vuv_f1,
}
