"""aligned_token_accuracy: DTW on codec latents scores time-warped copies as exact, frame-by-frame doesn't."""

import importlib.util

import numpy as np
import pytest
import torch

from evaluation.token_alignment import aligned_token_accuracy, dtw_path, latents
from tokenizer.utils.errors import CodecError

needs_librosa = pytest.mark.skipif(importlib.util.find_spec("librosa") is None,
                                   reason="DTW uses librosa (the eval extra)")

K, V, D, F = 3, 16, 8, 60


@pytest.fixture
def table() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(K, V, D))


def random_codes(seed: int, frames: int = F) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, V, size=(K, frames))


def same_frame_accuracy(gen: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The naive score this metric replaces: tokens compared at equal frame indices."""
    n = min(gen.shape[1], ref.shape[1])
    return (gen[:, :n] == ref[:, :n]).mean(axis=1)


@needs_librosa
def test_identity_scores_one_on_a_diagonal_path(table):
    codes = random_codes(1)
    scores = aligned_token_accuracy(codes, codes, table)
    assert scores["per_level"] == [1.0] * K
    assert scores["path_length"] == F
    assert scores["length_ratio"] == 1.0


@needs_librosa
def test_identity_path_is_the_diagonal(table):
    lat = latents(random_codes(1), table)
    cost = np.linalg.norm(lat[:, None] - lat[None], axis=-1)
    np.testing.assert_array_equal(dtw_path(cost), np.stack([np.arange(F)] * 2, axis=1))


@needs_librosa
def test_time_stretched_copy_scores_one_where_same_frame_does_not(table):
    ref = random_codes(2)
    gen = np.repeat(ref, [2 if f % 3 == 2 else 1 for f in range(F)], axis=1)  # every 3rd frame doubled
    assert gen.shape == (K, F + F // 3)
    scores = aligned_token_accuracy(gen, ref, table)
    assert scores["per_level"] == [1.0] * K
    assert scores["length_ratio"] == pytest.approx(4 / 3)
    assert scores["path_length"] == gen.shape[1]  # each generated frame paired with its source frame only
    assert same_frame_accuracy(gen, ref).max() < 0.4


@needs_librosa
def test_compressed_reference_scores_one(table):
    # the other direction: the reference lasts longer than the generation (every 3rd reference frame doubled)
    gen = random_codes(3)
    ref = np.repeat(gen, [2 if f % 3 == 2 else 1 for f in range(F)], axis=1)
    assert aligned_token_accuracy(gen, ref, table)["per_level"] == [1.0] * K
    assert same_frame_accuracy(gen, ref).max() < 0.4


@needs_librosa
def test_shifted_by_one_frame_scores_near_one_where_same_frame_scores_chance(table):
    ref = random_codes(4)
    gen = np.concatenate([ref[:, :1], ref[:, :-1]], axis=1)  # one frame late; the last reference frame is lost
    per_level = aligned_token_accuracy(gen, ref, table)["per_level"]
    # every reference frame but the last has its exact copy; the last is paired with its predecessor
    assert min(per_level) >= (F - 1) / F
    assert same_frame_accuracy(gen, ref).max() < 0.2


@needs_librosa
def test_unrelated_codes_score_near_chance(table):
    scores = aligned_token_accuracy(random_codes(5, 80), random_codes(6, 70), table)
    assert max(scores["per_level"]) < 0.2  # chance is 1 / V = 0.0625
    assert scores["length_ratio"] == pytest.approx(80 / 70)


@needs_librosa
def test_score_averages_over_the_generated_frames_aligned_to_each_reference_frame():
    # one level, 1-D latents 0, 1, 10: generated [0, 1, 2] -> latents [0, 1, 10], reference [0, 2] -> [0, 10];
    # generated frame 1 (latent 1) lies nearer reference frame 0, so the path is (0,0), (1,0), (2,1).
    table = np.array([[[0.0], [1.0], [10.0]]])
    scores = aligned_token_accuracy(np.array([[0, 1, 2]]), np.array([[0, 2]]), table)
    # reference frame 0: one of its two generated frames matches (0.5); reference frame 1: 1.0
    assert scores["per_level"] == [0.75]
    assert scores["path_length"] == 3


@needs_librosa
def test_path_is_monotonic_from_first_to_last_frames():
    cost = np.random.default_rng(7).random((23, 37))
    path = dtw_path(cost)
    assert path.dtype == np.int64 and path.shape[1] == 2
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (22, 36)
    steps = {tuple(s) for s in np.diff(path, axis=0)}
    assert steps <= {(1, 0), (0, 1), (1, 1)}
    assert 37 <= len(path) <= 23 + 37 - 1


@needs_librosa
def test_path_is_optimal_on_a_small_exhaustive_case():
    # every monotonic path through a 4 x 5 matrix, enumerated: DTW's cost must equal the minimum
    cost = np.random.default_rng(8).random((4, 5))

    def best(i: int, j: int) -> float:
        if (i, j) == (0, 0):
            return cost[0, 0]
        prev = [best(a, b) for a, b in ((i - 1, j), (i, j - 1), (i - 1, j - 1)) if a >= 0 and b >= 0]
        return cost[i, j] + min(prev)

    path = dtw_path(cost)
    assert cost[path[:, 0], path[:, 1]].sum() == pytest.approx(best(3, 4))


@needs_librosa
def test_torch_inputs_give_the_same_scores(table):
    ref = random_codes(9)
    gen = np.concatenate([ref[:, :1], ref[:, :-1]], axis=1)
    as_numpy = aligned_token_accuracy(gen, ref, table)
    as_torch = aligned_token_accuracy(torch.from_numpy(gen), torch.from_numpy(ref),
                                      torch.from_numpy(table).float().requires_grad_())
    assert as_torch["per_level"] == pytest.approx(as_numpy["per_level"])
    assert (as_torch["path_length"], as_torch["length_ratio"]) == (as_numpy["path_length"], as_numpy["length_ratio"])


def test_empty_generation_scores_zero(table):
    scores = aligned_token_accuracy(np.zeros((K, 0), dtype=np.int64), random_codes(10), table)
    assert scores == {"per_level": [0.0] * K, "path_length": 0, "length_ratio": 0.0}


def test_level_count_mismatch_names_the_shapes(table):
    with pytest.raises(ValueError, match=r"\(2, 60\).*\(3, 60\)"):
        aligned_token_accuracy(random_codes(11)[:2], random_codes(12), table)
    with pytest.raises(CodecError, match=r"\(2, 16, 8\)"):
        aligned_token_accuracy(random_codes(11), random_codes(12), table[:2])


def test_empty_reference_is_refused(table):
    with pytest.raises(CodecError, match=r"\(3, 0\)"):
        aligned_token_accuracy(random_codes(13), np.zeros((K, 0), dtype=np.int64), table)


def test_latents_sum_the_selected_code_vectors(table):
    codes = random_codes(14, 5)
    manual = np.zeros((5, D))
    for f in range(5):
        for k in range(K):
            manual[f] += table[k, codes[k, f]]
    np.testing.assert_allclose(latents(codes, table), manual)
    np.testing.assert_allclose(latents(torch.from_numpy(codes), torch.from_numpy(table)), manual)


def test_latents_refuse_codes_outside_the_codebook(table):
    codes = random_codes(15, 5)
    codes[1, 2] = V
    with pytest.raises(CodecError, match=f"code {V} outside"):
        latents(codes, table)
