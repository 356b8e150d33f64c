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

`METRICS` maps each name to a `MetricSpec` (columns, direction, whether it needs a reference, the
function that computes it); `compute_metrics` evaluates a list of them on one pair.

Undefined values are NaN, never a placeholder: STOI / ESTOI of a clip with fewer than 30 STOI frames
(0.4 s) of speech (pystoi's 1e-5), SI-SDR / STOI / mel and STFT distances against a silent reference
(peak below -80 dBFS: the ratios divide by nothing), PESQ where it finds no speech, V/UV F1 of a clip
shorter than one pYIN frame (64 ms) or without voiced frames. Each public function returns NaN there;
`fn.strict` raises `Undefined` with the reason instead, and `compute_metrics` records that reason
(`MetricScores.reasons`) and turns any other failure of one metric on one pair into NaN + reason, so
one odd clip never stops an evaluation (a missing package, a `CodecError`, still does).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from tokenizer.audio import resample
from tokenizer.utils.errors import CodecError

from .deps import require
from .speaker import get_speaker_encoder

logger = logging.getLogger(__name__)

EPS = 1e-8
SILENCE_PEAK = 1e-4  # -80 dBFS: a reference this quiet is silent, and ratios against it mean nothing


class Undefined(Exception):
    """The metric has no value for this pair (too short, silent reference, no speech); the message says why."""


def _nan_if_undefined(fn: Callable[..., float]) -> Callable[..., float]:
    """The public form of a metric: NaN where it is undefined; `.strict` is the form that raises `Undefined`."""
    @functools.wraps(fn)
    def public(*args, **kwargs) -> float:
        try:
            return fn(*args, **kwargs)
        except Undefined as exc:
            logger.debug("%s undefined: %s", fn.__name__, exc)
            return math.nan

    public.strict = fn
    return public


def _check_reference(reference: np.ndarray) -> None:
    peak = float(np.max(np.abs(reference)))
    if peak < SILENCE_PEAK:
        raise Undefined(f"silent reference (peak {peak:.1e}, below -80 dBFS)")


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
@_nan_if_undefined
def si_sdr(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int | None = None) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019).

    Both signals are made zero-mean; target = a * ref with a = <deg, ref> / ||ref||^2;
    SI-SDR = 10 log10(||target||^2 / ||deg - target||^2). A small epsilon (1e-8) keeps identical signals
    finite (very large). Meaningless for parametric codecs (codec2): they do not reproduce the waveform.
    NaN for a silent reference.
    """
    ref, deg = _pair(reference, degraded)
    _check_reference(ref)
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
        raise Undefined(f"PESQ found no usable speech ({type(exc).__name__})") from exc


@_nan_if_undefined
def pesq_wb(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int) -> float:
    """Wide-band PESQ (ITU-T P.862.2) at 16 kHz, MOS-LQO in [1.04, 4.64]; higher is better."""
    return _pesq(reference, degraded, sampling_rate, 16000, "wb")


@_nan_if_undefined
def pesq_nb(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int) -> float:
    """Narrow-band PESQ (ITU-T P.862 + P.862.1 mapping) on 8 kHz resampled signals, MOS-LQO in [1.02, 4.55]."""
    return _pesq(reference, degraded, sampling_rate, 8000, "nb")


STOI_SECONDS = (256 + 29 * 128) / 10000  # pystoi: 30 frames of 256 samples, hop 128, at 10 kHz


@_nan_if_undefined
def stoi(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int, extended: bool = False) -> float:
    """STOI (Taal et al. 2011), or ESTOI (Jensen & Taal 2016) with `extended=True`, in [0, 1]
    (pystoi resamples to 10 kHz and drops frames 40 dB below the loudest). NaN when fewer than 30
    frames (0.4 s) of speech remain, where pystoi would return a placeholder 1e-5 (or crash, under
    25 ms), and for a silent reference."""
    _stoi = require("pystoi").stoi

    ref, deg = _pair(reference, degraded)
    _check_reference(ref)
    if ref.size / sampling_rate < STOI_SECONDS:
        raise Undefined(f"{ref.size / sampling_rate:.3f} s is shorter than the {STOI_SECONDS:.3f} s STOI needs")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(_stoi(ref, deg, sampling_rate, extended=extended))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        raise Undefined(f"fewer than 30 STOI frames ({STOI_SECONDS:.3f} s) of speech after dropping silent frames")
    return value


@_nan_if_undefined
def estoi(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int) -> float:
    """Extended STOI (Jensen & Taal 2016), in [0, 1]; NaN where undefined (see `stoi`)."""
    return stoi.strict(reference, degraded, sampling_rate, extended=True)


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


@_nan_if_undefined
def visqol(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int) -> float:
    """ViSQOL v3 speech mode (16 kHz, voice-activity based, deep-lattice MOS mapping): MOS-LQO, ~1..4.75."""
    ref, deg = _pair(_at(reference, sampling_rate, 16000), _at(degraded, sampling_rate, 16000))
    return float(_visqol_api().measure_from_arrays(ref, deg, 16000).moslqo)


# ------------------------------------------------------------------------------------ spectral distances
def _stft_mag(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT| (n_fft // 2 + 1, frames), centred frames; a clip shorter than `n_fft` is zero-padded to
    `n_fft` first (librosa would warn and frame it anyway: both signals of a pair get the same padding)."""
    librosa = require("librosa")

    x = np.pad(x.astype(np.float32), (0, max(0, n_fft - x.size)))
    return np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop, window="hann", center=True))


def _log_l1_plus_sc(ref_mag: np.ndarray, deg_mag: np.ndarray, floor: float = 1e-5) -> float:
    """L1 between natural-log magnitudes (floored at 1e-5) + spectral convergence ||R - D||_F / ||R||_F."""
    log_l1 = np.mean(np.abs(np.log(np.maximum(deg_mag, floor)) - np.log(np.maximum(ref_mag, floor))))
    sc = np.linalg.norm(ref_mag - deg_mag) / max(np.linalg.norm(ref_mag), EPS)
    return float(log_l1 + sc)


@_nan_if_undefined
def mel_distance(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int,
                 n_fft: int = 2048, hop_length: int = 256, n_mels: int = 128) -> float:
    """Mel distance of Stable Codec (Parker et al. 2024, appendix D): on 128-band mel magnitudes of a
    Hann-2048 / hop-256 STFT (librosa Slaney filterbank, 0 Hz to Nyquist), the sum of the L1 distance of
    log magnitudes and the spectral convergence of the linear magnitudes. 0 for identical signals.
    Clips shorter than `n_fft` samples are zero-padded to `n_fft`; NaN for a silent reference."""
    librosa = require("librosa")

    ref, deg = _pair(reference, degraded)
    _check_reference(ref)
    fb = librosa.filters.mel(sr=sampling_rate, n_fft=n_fft, n_mels=n_mels)
    return _log_l1_plus_sc(fb @ _stft_mag(ref, n_fft, hop_length), fb @ _stft_mag(deg, n_fft, hop_length))


@_nan_if_undefined
def stft_distance(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int | None = None,
                  n_fft: int = 2048, hop_length: int = 512) -> float:
    """STFT distance of Stable Codec (appendix D): as `mel_distance` on linear magnitudes of a
    Hann-2048 / hop-512 STFT. 0 for identical signals; short clips padded, NaN for a silent reference."""
    ref, deg = _pair(reference, degraded)
    _check_reference(ref)
    return _log_l1_plus_sc(_stft_mag(ref, n_fft, hop_length), _stft_mag(deg, n_fft, hop_length))


# ------------------------------------------------------------------------------------ pitch
_VOICING_CACHE: dict[tuple, np.ndarray] = {}
PYIN_FRAME = 1024  # samples at 16 kHz (64 ms)


def voicing(audio: np.ndarray, sampling_rate: int, fmin: float = 50.0, fmax: float = 550.0) -> np.ndarray:
    """Voiced flags (bool, one per 10 ms frame) of pYIN (Mauch & Dixon 2014, `librosa.pyin`) on the
    signal resampled to 16 kHz, 64 ms frames, f0 searched in [fmin, fmax] Hz.

    pYIN costs about 0.2 s per second of audio, and an evaluation compares one reference with many
    reconstructions, so the last few results are kept, keyed by a hash of the samples. Raises
    `Undefined` for a clip shorter than one frame (64 ms)."""
    librosa = require("librosa")

    x = _at(audio, sampling_rate, 16000).astype(np.float32)
    if x.size < PYIN_FRAME:
        raise Undefined(f"{x.size / 16000:.3f} s is shorter than one pYIN frame ({PYIN_FRAME / 16000:.3f} s)")
    key = (hashlib.sha1(x.tobytes()).hexdigest(), fmin, fmax)
    if key not in _VOICING_CACHE:
        _, voiced, _ = librosa.pyin(x, fmin=fmin, fmax=fmax, sr=16000, frame_length=PYIN_FRAME, hop_length=160)
        if len(_VOICING_CACHE) >= 8:
            _VOICING_CACHE.pop(next(iter(_VOICING_CACHE)))
        _VOICING_CACHE[key] = np.asarray(voiced, dtype=bool)
    return _VOICING_CACHE[key]


@_nan_if_undefined
def vuv_f1(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int) -> float:
    """F1 score of the degraded signal's voiced frames against the reference's (pYIN, see `voicing`):
    2 TP / (2 TP + FP + FN), voiced = positive. 1 when the voicing agrees everywhere; NaN when neither
    signal has a voiced frame."""
    ref, deg = _pair(reference, degraded)
    a, b = voicing(ref, sampling_rate), voicing(deg, sampling_rate)
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    tp, fp, fn = int(np.sum(a & b)), int(np.sum(~a & b)), int(np.sum(a & ~b))
    if tp + fp + fn == 0:
        raise Undefined("no voiced frame in either signal")
    return 2 * tp / (2 * tp + fp + fn)


# ------------------------------------------------------------------------------------ speaker
def speaker_similarity(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int,
                       backend: str = "resemblyzer") -> float:
    """Cosine similarity of speaker embeddings of the two signals (backend: see `speaker.py`), in [-1, 1]."""
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
      pickle) called as `model(wave)` with wave FloatTensor (1, T) at `sampling_rate` (16 kHz); returns
      the MOS (any shape; the mean is taken). A model that also wants the rate (e.g. SpeechMOS's
      `utmos22_strong(wave, sr)`) is scripted with the rate bound, so that one signature serves all.
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
            out = self._model(torch.from_numpy(x))
        return float(torch.as_tensor(out, dtype=torch.float32).mean())


# ------------------------------------------------------------------------------------ registry
Options = dict[str, Any]  # per-run inputs of some metrics: speaker_backend, utmos


def _intrusive(fn: Callable[..., float], column: str) -> Callable[..., dict[str, float]]:
    strict = fn.strict
    return lambda ref, deg, sr, options: {column: strict(ref, deg, sr)}


def _spk_sim(ref, deg, sr, options: Options) -> dict[str, float]:
    return {"spk_sim": speaker_similarity(ref, deg, sr, options.get("speaker_backend", "resemblyzer"))}


def _dnsmos(ref, deg, sr, options: Options) -> dict[str, float]:
    return dnsmos(deg, sr)


def _utmos(ref, deg, sr, options: Options) -> dict[str, float]:
    if options.get("utmos") is None:
        raise CodecError("metric 'utmos' needs local weights: pass --utmos-weights PATH")
    return {"utmos": options["utmos"](deg, sr)}


@dataclass(frozen=True)
class MetricSpec:
    """A metric's name, output columns, direction, whether it compares with a reference, and `compute`:
    `(reference, degraded, sampling_rate, options) -> {column: value}`, raising `Undefined` where the
    metric has no value (options: `speaker_backend`, `utmos`)."""

    name: str
    columns: tuple[str, ...]
    higher_is_better: bool
    intrusive: bool
    compute: Callable[[np.ndarray, np.ndarray, int, Options], dict[str, float]]
    waveform: bool = False  # compares waveforms sample by sample (NaN for parametric codecs)
    label: str = ""


def _single(name: str, fn: Callable[..., float], higher: bool, label: str, waveform: bool = False) -> MetricSpec:
    return MetricSpec(name, (name,), higher, True, _intrusive(fn, name), waveform=waveform, label=label)


METRICS: dict[str, MetricSpec] = {m.name: m for m in [
    _single("pesq_wb", pesq_wb, True, "PESQ-WB"),
    _single("pesq_nb", pesq_nb, True, "PESQ-NB"),
    _single("stoi", stoi, True, "STOI"),
    _single("estoi", estoi, True, "ESTOI"),
    _single("si_sdr", si_sdr, True, "SI-SDR (dB)", waveform=True),
    _single("visqol", visqol, True, "ViSQOL"),
    _single("mel_distance", mel_distance, False, "Mel dist."),
    _single("stft_distance", stft_distance, False, "STFT dist."),
    _single("vuv_f1", vuv_f1, True, "V/UV F1"),
    MetricSpec("spk_sim", ("spk_sim",), True, True, _spk_sim, label="Spk. sim."),
    MetricSpec("dnsmos", ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"), True, False, _dnsmos,
               label="DNSMOS"),
    MetricSpec("utmos", ("utmos",), True, False, _utmos, label="UTMOS"),
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


class MetricScores(dict):
    """{column: value} of one pair; `reasons` says why each NaN column has no value."""

    def __init__(self):
        super().__init__()
        self.reasons: dict[str, str] = {}

    def undefined(self, columns: Sequence[str], reason: str) -> None:
        for c in columns:
            self[c] = math.nan
            self.reasons[c] = reason


def compute_metrics(reference: np.ndarray, degraded: np.ndarray, sampling_rate: int, names: Sequence[str],
                    waveform_matching: bool = True, speaker_backend: str = "resemblyzer",
                    utmos: UTMOSPredictor | None = None) -> MetricScores:
    """Evaluate the metrics `names` on one (reference, degraded) pair at `sampling_rate` Hz.

    Returns {column: value} (columns as in `metric_columns(names)`) with `.reasons` {column: why NaN}.
    NaN where a metric is undefined (see the module docstring), for waveform metrics (SI-SDR) when
    `waveform_matching=False` (parametric codecs), for every column of an empty signal, and for a metric
    that fails on this pair (the failure is logged and recorded as the reason). A `CodecError` (a missing
    package or weights: every pair would fail) is raised.
    """
    out = MetricScores()
    sizes = np.asarray(reference).size, np.asarray(degraded).size
    for name in check_metrics(names):
        spec = METRICS[name]
        if spec.waveform and not waveform_matching:
            out.undefined(spec.columns, "not meaningful for a parametric codec")
            continue
        if sizes[1] == 0 or (spec.intrusive and sizes[0] == 0):
            out.undefined(spec.columns, f"empty audio (reference {sizes[0]} samples, degraded {sizes[1]})")
            continue
        options = {"speaker_backend": speaker_backend, "utmos": utmos}
        try:
            out.update(spec.compute(reference, degraded, sampling_rate, options))
        except Undefined as exc:
            out.undefined(spec.columns, str(exc))
        except CodecError:
            raise
        except Exception as exc:  # one metric failing on one odd clip must not stop the evaluation
            reason = f"failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            logger.warning("%s %s", name, reason)
            logger.debug("%s failed", name, exc_info=True)
            out.undefined(spec.columns, reason)
    return out
