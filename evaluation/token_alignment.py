"""Token accuracy of a TTS model's codes against reference codes that need not line up frame by frame.

A duration-predicting model (MobileSpeech) decides how many frames each phoneme lasts, so its codes
(K, F_gen) and the reference codes (K, F_ref) of the same sentence differ in length and drift apart in time:
comparing the tokens at equal frame indices measures nothing (a reference shifted by a single frame already
scores about chance). `aligned_token_accuracy` first aligns the two sequences by dynamic time warping, then
scores tokens along the warping path.

The alignment runs on codec latents, not on token ids. Ids are categorical: two frames that sound nearly
the same can carry unrelated ids (the nearest code vector flips at a boundary of the codebook's Voronoi
cells), and id 17 is no closer to 18 than to 900, so a distance between ids carries no information. The
latent of a frame, the sum over levels of its codes' vectors (`code_vectors`, as returned by
`AutoCodecTokenizer.code_vectors`), is the codec's own reconstruction space: the space its decoder reads
and its quantizer measured distances in, so frames close there sound alike.

The cost is the Euclidean distance between latents rather than the cosine distance: residual and FSQ
quantizers choose codes by Euclidean distance, so the cost measures what the codec considers a
near-miss, and the cosine would discard the norm, which carries energy (a silent frame lies near the
origin, where the cosine is undefined).

    from evaluation.token_alignment import aligned_token_accuracy
    table = tokenizer.code_vectors(num_quantizers=codes.shape[0])       # (K, V, D)
    scores = aligned_token_accuracy(generated_codes, reference_codes, table)
    scores["per_level"]                                                 # K floats in [0, 1]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from evaluation.deps import require
from tokenizer.utils.errors import CodecError

if TYPE_CHECKING:
    import torch

__all__ = ["aligned_token_accuracy", "dtw_path", "latents"]


def _numpy(x: Any) -> np.ndarray:
    """A torch tensor (any device, with or without grad) or array-like as a numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_codes(codes: np.ndarray, name: str) -> np.ndarray:
    if codes.ndim != 2:
        raise CodecError(f"{name} must be (K, F) codes, got shape {tuple(codes.shape)}")
    if codes.size and not np.issubdtype(codes.dtype, np.integer):
        raise CodecError(f"{name} must hold integer codes, got dtype {codes.dtype}")
    return codes.astype(np.int64, copy=False)


def dtw_path(cost: np.ndarray) -> np.ndarray:
    """Optimal monotonic alignment of two sequences by classic dynamic time warping.

    cost: (N, M) float, cost[i, j] the distance between frame i of the first sequence and frame j of the
    second; steps (1, 0), (0, 1) and (1, 1), each adding the cost of the cell it enters (librosa's
    `librosa.sequence.dtw`, default step sizes and weights). Returns the path as an int64 array (L, 2) of
    (i, j) pairs from (0, 0) to (N - 1, M - 1), with max(N, M) <= L <= N + M - 1 and each pair differing
    from the previous one by one of the steps. CodecError for a cost that is not a non-empty finite 2-D
    array.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2 or cost.size == 0:
        raise CodecError(f"DTW needs a non-empty (N, M) cost matrix, got shape {cost.shape}")
    if not np.isfinite(cost).all():
        raise CodecError(f"DTW cost matrix of shape {cost.shape} holds {int((~np.isfinite(cost)).sum())} "
                         "non-finite values")
    librosa = require("librosa")
    _, path = librosa.sequence.dtw(C=cost, backtrack=True)
    return np.ascontiguousarray(path[::-1], dtype=np.int64)  # librosa backtracks from the end


def latents(codes: torch.Tensor | np.ndarray, code_vectors: torch.Tensor | np.ndarray) -> np.ndarray:
    """Codec latent of every frame: the sum over levels of the code vectors its codes select.

    codes: (K, F) int, values in [0, V); code_vectors: (K, V, D) float, the codec's per-level table of code
    vectors (`AutoCodecTokenizer.code_vectors`). Returns (F, D) float64 with
    out[f] = sum_k code_vectors[k, codes[k, f]]. CodecError naming the shapes when K differs, or naming
    the value of a code outside [0, V).
    """
    codes = _check_codes(_numpy(codes), "codes")
    table = _numpy(code_vectors).astype(np.float64, copy=False)
    if table.ndim != 3:
        raise CodecError(f"code_vectors must be (K, V, D), got shape {tuple(table.shape)}")
    if codes.shape[0] != table.shape[0]:
        raise CodecError(f"codes of shape {tuple(codes.shape)} have {codes.shape[0]} levels but code_vectors of "
                         f"shape {tuple(table.shape)} have {table.shape[0]}")
    if codes.size and (codes.min() < 0 or codes.max() >= table.shape[1]):
        bad = int(codes.min()) if codes.min() < 0 else int(codes.max())
        raise CodecError(f"code {bad} outside the codebook [0, {table.shape[1] - 1}]")
    levels = np.arange(codes.shape[0])[:, None]
    return table[levels, codes].sum(axis=0)  # (K, F, D) -> (F, D)


def aligned_token_accuracy(generated: torch.Tensor | np.ndarray, reference: torch.Tensor | np.ndarray,
                           code_vectors: torch.Tensor | np.ndarray) -> dict[str, Any]:
    """Per-level token accuracy of generated codes against reference codes after DTW on codec latents.

    generated: (K, F_gen) int codes; reference: (K, F_ref) int codes, F_ref >= 1; code_vectors: (K, V, D)
    float, the codec's code vector table (see `latents`). The cost of pairing generated frame i with
    reference frame j is the Euclidean distance of their latents; `dtw_path` aligns the two. Level k
    scores, for each reference frame j, the fraction of the generated frames aligned to j whose token at
    level k equals reference[k, j], averaged over the F_ref reference frames (each appears on the path),
    so a reference frame stretched over three generated frames weighs as much as one matched once.

    Returns {"per_level": K floats in [0, 1], "path_length": L (pairs on the path, 0 when F_gen == 0),
    "length_ratio": F_gen / F_ref}. An empty generation scores 0.0 on every level. CodecError (a
    ValueError) naming both shapes when the two code arrays or the table disagree on K, or when the
    reference has no frame.
    """
    gen = _check_codes(_numpy(generated), "generated")
    ref = _check_codes(_numpy(reference), "reference")
    table_shape = tuple(_numpy(code_vectors).shape)
    if gen.shape[0] != ref.shape[0] or len(table_shape) != 3 or table_shape[0] != ref.shape[0]:
        raise CodecError(f"generated codes {tuple(gen.shape)}, reference codes {tuple(ref.shape)} and "
                         f"code_vectors {table_shape} must agree on K (codes (K, F), table (K, V, D))")
    num_levels, f_gen = gen.shape
    f_ref = ref.shape[1]
    if f_ref == 0:
        raise CodecError(f"reference codes of shape {tuple(ref.shape)} have no frame to score against")
    if f_gen == 0:
        return {"per_level": [0.0] * num_levels, "path_length": 0, "length_ratio": 0.0}

    from scipy.spatial.distance import cdist

    path = dtw_path(cdist(latents(gen, code_vectors), latents(ref, code_vectors)))  # Euclidean, (F_gen, F_ref)
    i, j = path[:, 0], path[:, 1]
    pairs_per_ref = np.bincount(j, minlength=f_ref)  # >= 1 everywhere: a DTW path visits every column
    per_level = []
    for k in range(num_levels):
        hits_per_ref = np.bincount(j, weights=(gen[k, i] == ref[k, j]).astype(np.float64), minlength=f_ref)
        per_level.append(float(np.mean(hits_per_ref / pairs_per_ref)))
    return {"per_level": per_level, "path_length": int(len(path)), "length_ratio": f_gen / f_ref}
