"""Rate measures: codebook utilisation, Huffman-coded bitrate, real-time factor, Bjontegaard deltas.

- `normalized_entropy`: H(p) / log2(N) of a codebook's token histogram over a corpus, N the codebook
  size; 1 when every entry is used equally often.
- `huffman_code_lengths` / `huffman_bitrate`: Stable Codec (Parker et al. 2024) appendix A.8: build a
  Huffman code from the corpus histogram of each codebook; the bitrate is the histogram-weighted mean
  code length, summed over codebooks, times the frame rate. It is what a static entropy coder would
  reach on this corpus (within 1 bit per symbol of the entropy).
- `bd_rate` / `bd_metric`: Bjontegaard (VCEG-M33, 2001), the "BD-Rate / BD-PESQ / BD-ViSQOL" of the
  Rate-Aware Learned Speech Compression paper: fit a cubic polynomial through each rate-distortion
  curve in the (log10 rate, metric) plane and average the gap between the two fits over the interval
  where both curves have data.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ..errors import CodecError


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
def _check_curve(rate: Sequence[float], metric: Sequence[float], label: str) -> tuple[np.ndarray, np.ndarray]:
    r, m = np.asarray(rate, dtype=np.float64), np.asarray(metric, dtype=np.float64)
    keep = np.isfinite(r) & np.isfinite(m) & (r > 0)
    r, m = r[keep], m[keep]
    if r.size < 2 or r.shape != m.shape:
        raise CodecError(f"curve {label} needs at least 2 points with positive rate and finite metric, got {r.size}")
    return np.log10(r), m


def _mean_gap(x_a, y_a, x_b, y_b) -> float:
    """Mean of fit_b - fit_a over the overlap of the x ranges; fits are polynomials of degree
    min(3, points - 1) (the cubic of the original method when each curve has 4 or more points)."""
    lo, hi = max(x_a.min(), x_b.min()), min(x_a.max(), x_b.max())
    if not hi > lo:
        raise CodecError(f"the two curves do not overlap (ranges [{x_a.min():.4g}, {x_a.max():.4g}] "
                         f"and [{x_b.min():.4g}, {x_b.max():.4g}])")
    integrals = []
    for x, y in ((x_a, y_a), (x_b, y_b)):
        poly = np.polyint(np.polyfit(x, y, min(3, x.size - 1)))
        integrals.append(np.polyval(poly, hi) - np.polyval(poly, lo))
    return float((integrals[1] - integrals[0]) / (hi - lo))


def bd_rate(rate_a: Sequence[float], metric_a: Sequence[float], rate_b: Sequence[float],
            metric_b: Sequence[float]) -> float:
    """Bjontegaard delta rate of curve B against anchor A, in percent: the average rate change for
    equal quality over the metric range both cover (negative: B needs fewer bits).

    log10(rate) is fitted as a polynomial of the metric for each curve; the mean gap d over the
    overlapping metric interval gives 100 (10^d - 1). The same formula holds for lower-is-better
    metrics (mel distance): rate is fitted as a function of the metric either way.
    """
    xa, ma = _check_curve(rate_a, metric_a, "A")
    xb, mb = _check_curve(rate_b, metric_b, "B")
    return float((10 ** _mean_gap(ma, xa, mb, xb) - 1) * 100)


def bd_metric(rate_a: Sequence[float], metric_a: Sequence[float], rate_b: Sequence[float],
              metric_b: Sequence[float]) -> float:
    """Bjontegaard delta metric (BD-PESQ, BD-ViSQOL...): mean of metric_B - metric_A at equal rate over
    the overlapping log10-rate interval (positive: B scores higher)."""
    xa, ma = _check_curve(rate_a, metric_a, "A")
    xb, mb = _check_curve(rate_b, metric_b, "B")
    return _mean_gap(xa, ma, xb, mb)
