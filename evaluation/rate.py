"""Rate measures: codebook utilisation, Huffman-coded bitrate, real-time factor, Bjontegaard deltas.

- `normalized_entropy`: H(p) / log2(N) of a codebook's token histogram over a corpus, N the codebook
  size; 1 when every entry is used equally often.
- `huffman_code_lengths` / `huffman_bitrate`: Stable Codec (Parker et al. 2024) appendix A.8: build a
  Huffman code from the corpus histogram of each codebook; the bitrate is the histogram-weighted mean
  code length, summed over codebooks, times the frame rate. It is what a static entropy coder would
  reach on this corpus (within 1 bit per symbol of the entropy).
- `bd_rate` / `bd_metric`: Bjontegaard (VCEG-M33, 2001), the "BD-Rate / BD-PESQ / BD-ViSQOL" of the
  Rate-Aware Learned Speech Compression paper: reduce each curve to its rate-distortion front, pass a
  curve through it in the (log10 rate, metric) plane (piecewise cubic Hermite by default, the original
  least-squares cubic on request) and average the gap between the two over the interval where both
  curves have data; `bd_overlap` says how wide that interval is.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from tokenizer.utils.errors import CodecError


# ------------------------------------------------------------------------------------ histograms
def codebook_histograms(codes: Iterable[np.ndarray], codebook_sizes: Sequence[int]) -> np.ndarray:
    """Token counts per codebook over a corpus.

    codes: iterable of integer arrays (K, F_i), one per utterance (K = len(codebook_sizes)).
    Returns counts (K, max(codebook_sizes)) int64; row k counts only its first codebook_sizes[k] entries.
    """
    sizes = [int(n) for n in codebook_sizes]
    counts = np.zeros((len(sizes), max(sizes)), dtype=np.int64)
    for c in codes:
        c = np.asarray(c)
        if c.ndim != 2 or c.shape[0] != len(sizes):
            raise CodecError(f"codes of shape {c.shape} do not match {len(sizes)} codebooks")
        for k, n in enumerate(sizes):
            if c.shape[1] and (c[k].min() < 0 or c[k].max() >= n):
                raise CodecError(f"codebook {k} holds code {int(c[k].max())} outside [0, {n - 1}]")
            counts[k, :n] += np.bincount(c[k].astype(np.int64), minlength=n)
    return counts


def normalized_entropy(counts: np.ndarray, codebook_size: int | None = None) -> float:
    """Shannon entropy of a histogram in bits divided by log2(codebook_size) (default: len(counts)).

    1.0 for uniform use of every entry; 0.0 when one entry takes all the mass. NaN for an empty histogram.
    """
    counts = np.asarray(counts, dtype=np.float64).reshape(-1)
    n = len(counts) if codebook_size is None else int(codebook_size)
    total = counts.sum()
    if total <= 0:
        return math.nan
    if n <= 1:
        return 1.0
    p = counts[counts > 0] / total
    return float(max(0.0, -(p * np.log2(p)).sum() / math.log2(n)))  # max: no "-0.0"


def usage(counts: np.ndarray, codebook_size: int | None = None) -> float:
    """Fraction of the codebook's entries that occur at least once."""
    counts = np.asarray(counts).reshape(-1)
    n = len(counts) if codebook_size is None else int(codebook_size)
    return float(np.count_nonzero(counts[:n]) / n)


# ------------------------------------------------------------------------------------ Huffman
def huffman_code_lengths(counts: np.ndarray) -> np.ndarray:
    """Code length in bits of each symbol of a Huffman code built from `counts`.

    Written here rather than taken from a library because only the lengths are needed (no bitstream)
    and the construction is a dozen lines with `heapq`. Symbols with count 0 get length 0 (they are
    not coded); a histogram with one used symbol gets a 1-bit code (a code needs at least one bit).
    """
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    lengths = np.zeros(len(counts), dtype=np.int64)
    used = np.flatnonzero(counts > 0)
    if len(used) == 0:
        return lengths
    if len(used) == 1:
        lengths[used] = 1
        return lengths
    # Heap items: (weight, tie-break id, symbols in the subtree). Merging two subtrees adds one bit
    # to every symbol under them.
    heap = [(int(counts[s]), i, [int(s)]) for i, s in enumerate(used)]
    heapq.heapify(heap)
    next_id = len(heap)
    while len(heap) > 1:
        w1, _, s1 = heapq.heappop(heap)
        w2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (w1 + w2, next_id, s1 + s2))
        next_id += 1
    return lengths


def mean_huffman_length(counts: np.ndarray) -> float:
    """Histogram-weighted mean Huffman code length in bits per symbol (NaN for an empty histogram)."""
    counts = np.asarray(counts, dtype=np.float64).reshape(-1)
    if counts.sum() <= 0:
        return math.nan
    return float((huffman_code_lengths(counts) * counts).sum() / counts.sum())


@dataclass
class CodebookStats:
    """Per-codebook utilisation over a corpus and the rates that follow.

    entropy: normalised entropy per codebook (K,); usage: fraction of entries used (K,);
    huffman_bits: mean Huffman code length per codebook in bits/frame (K,);
    huffman_bitrate / entropy_bitrate / nominal_bitrate: bits per second; frame_rate: Hz.
    """

    entropy: list[float]
    usage: list[float]
    huffman_bits: list[float]
    huffman_bitrate: float
    entropy_bitrate: float
    nominal_bitrate: float
    frame_rate: float
    num_frames: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def codebook_stats(codes: Iterable[np.ndarray], codebook_sizes: Sequence[int], frame_rate: float) -> CodebookStats:
    """Utilisation and Huffman bitrate (Stable Codec app. A.8) of codes (K, F_i) over a corpus."""
    counts = codebook_histograms(codes, codebook_sizes)
    sizes = [int(n) for n in codebook_sizes]
    entropy = [normalized_entropy(counts[k, :n], n) for k, n in enumerate(sizes)]
    huff = [mean_huffman_length(counts[k, :n]) for k, n in enumerate(sizes)]
    bits_entropy = [e * math.log2(n) if n > 1 else 0.0 for e, n in zip(entropy, sizes)]
    return CodebookStats(
        entropy=entropy, usage=[usage(counts[k, :n], n) for k, n in enumerate(sizes)], huffman_bits=huff,
        huffman_bitrate=float(np.sum(huff) * frame_rate), entropy_bitrate=float(np.sum(bits_entropy) * frame_rate),
        nominal_bitrate=float(sum(math.ceil(math.log2(n)) for n in sizes) * frame_rate), frame_rate=float(frame_rate),
        num_frames=int(counts[0].sum()) if len(sizes) else 0,
    )


def real_time_factor(processing_seconds: float, audio_seconds: float) -> float:
    """Processing time / audio duration: below 1 is faster than real time (NaN for empty audio)."""
    return processing_seconds / audio_seconds if audio_seconds > 0 else math.nan


# ------------------------------------------------------------------------------------ Bjontegaard
BD_METHODS = ("pchip", "cubic")


def rd_front(rate: Sequence[float], metric: Sequence[float], higher_is_better: bool = True,
             label: str = "curve") -> tuple[np.ndarray, np.ndarray]:
    """The rate-distortion front of a curve, sorted by rate: finite points with positive rate whose quality
    beats every lower-rate point (an encoder never picks a point that a cheaper one matches or beats).
    Returns (log10 rate, metric); the metric is then strictly monotonic in rate, as the Bjontegaard
    method assumes."""
    r, m = np.asarray(rate, dtype=np.float64), np.asarray(metric, dtype=np.float64)
    if r.shape != m.shape:
        raise CodecError(f"{label}: {r.size} rates but {m.size} metric values")
    keep = np.isfinite(r) & np.isfinite(m) & (r > 0)
    r, m = r[keep], m[keep]
    order = np.lexsort((-m if higher_is_better else m, r))  # by rate, the better value first on ties
    sign = 1.0 if higher_is_better else -1.0
    front_r, front_m, best = [], [], -np.inf
    for i in order:
        if sign * m[i] > best:
            front_r.append(r[i])
            front_m.append(m[i])
            best = sign * m[i]
    if len(front_r) < 2:
        raise CodecError(f"{label} needs at least 2 points on its rate-distortion front (finite metric, positive "
                         f"rate, quality rising with rate), got {len(front_r)} of {np.asarray(rate).size}")
    return np.log10(front_r), np.asarray(front_m)


def _fronts(rate_a, metric_a, rate_b, metric_b, higher_is_better: bool):
    """(log10 rate, metric) of the anchor's front A and of front B."""
    return (*rd_front(rate_a, metric_a, higher_is_better, "curve A"),
            *rd_front(rate_b, metric_b, higher_is_better, "curve B"))


def _mean_gap(x_a, y_a, x_b, y_b, method: str) -> float:
    """Mean of fit_b - fit_a over the overlap of the x ranges. "cubic": least-squares polynomials of degree
    min(3, points - 1) (VCEG-M33); "pchip": piecewise cubic Hermite interpolation through the points, the
    variant of the later VCEG/JVET practice, which cannot overshoot between points."""
    if method not in BD_METHODS:
        raise CodecError(f"Bjontegaard method {method!r} not one of {', '.join(BD_METHODS)}")
    lo, hi = max(x_a.min(), x_b.min()), min(x_a.max(), x_b.max())
    if not hi > lo:
        raise CodecError(f"the two curves do not overlap (ranges [{x_a.min():.4g}, {x_a.max():.4g}] "
                         f"and [{x_b.min():.4g}, {x_b.max():.4g}])")
    integrals = []
    for x, y in ((x_a, y_a), (x_b, y_b)):
        order = np.argsort(x)
        x, y = x[order], y[order]
        if method == "pchip":
            from scipy.interpolate import PchipInterpolator

            integrals.append(float(PchipInterpolator(x, y).integrate(lo, hi)))
        else:
            poly = np.polyint(np.polyfit(x, y, min(3, x.size - 1)))
            integrals.append(np.polyval(poly, hi) - np.polyval(poly, lo))
    return float((integrals[1] - integrals[0]) / (hi - lo))


def bd_rate(rate_a: Sequence[float], metric_a: Sequence[float], rate_b: Sequence[float],
            metric_b: Sequence[float], higher_is_better: bool = True, method: str = "pchip") -> float:
    """Bjontegaard delta rate of curve B against anchor A, in percent: the average rate change for
    equal quality over the metric range both cover (negative: B needs fewer bits).

    Each curve is reduced to its rate-distortion front (`rd_front`), log10(rate) is interpolated as a
    function of the metric, and the mean gap d over the overlapping metric interval gives 100 (10^d - 1).
    `higher_is_better=False` for distances (mel distance). The result only speaks for the overlapping
    quality interval: a nearly flat anchor curve makes that interval narrow (see `bd_overlap`).
    """
    xa, ma, xb, mb = _fronts(rate_a, metric_a, rate_b, metric_b, higher_is_better)
    return float((10 ** _mean_gap(ma, xa, mb, xb, method) - 1) * 100)


def bd_metric(rate_a: Sequence[float], metric_a: Sequence[float], rate_b: Sequence[float],
              metric_b: Sequence[float], higher_is_better: bool = True, method: str = "pchip") -> float:
    """Bjontegaard delta metric (BD-PESQ, BD-ViSQOL...): mean of metric_B - metric_A at equal rate over
    the overlapping log10-rate interval of the two fronts (positive: B scores higher, i.e. better for a
    higher-is-better metric)."""
    xa, ma, xb, mb = _fronts(rate_a, metric_a, rate_b, metric_b, higher_is_better)
    return _mean_gap(xa, ma, xb, mb, method)


def bd_overlap(rate_a: Sequence[float], metric_a: Sequence[float], rate_b: Sequence[float],
               metric_b: Sequence[float], higher_is_better: bool = True) -> dict[str, float]:
    """How much of each front the deltas rest on: the shared metric interval (BD-rate) and log-rate
    interval (BD-metric), each as a fraction of the anchor's own range (0 when they do not overlap)."""
    xa, ma, xb, mb = _fronts(rate_a, metric_a, rate_b, metric_b, higher_is_better)

    def share(a, b):
        width = min(a.max(), b.max()) - max(a.min(), b.min())
        return float(max(width, 0.0) / (a.max() - a.min()))

    return {"metric_low": float(max(ma.min(), mb.min())), "metric_high": float(min(ma.max(), mb.max())),
            "metric_share": share(ma, mb), "rate_share": share(xa, xb),
            "anchor_points": int(xa.size), "points": int(xb.size)}
