"""One definition of a collapsed codec (evaluation/collapse.py), shared by the trainer and evaluate-codec."""

import numpy as np

from evaluation.collapse import COLLAPSE_CHANGED, collapse_reason, is_collapsed, symbols_changed


def test_symbols_changed_counts_positions_over_all_pairs():
    a = np.array([[1, 2, 3, 4]])
    assert symbols_changed([(a, a)]) == 0.0
    assert symbols_changed([(a, np.array([[1, 2, 0, 0]]))]) == 0.5
    # y and z symbols together: 1 of 4 + 2 of 2 differ -> 3 of 6
    assert symbols_changed([(a, np.array([[1, 2, 3, 0]])), (np.array([5, 6]), np.array([0, 0]))]) == 0.5
    assert symbols_changed([(a, np.zeros((1, 3), dtype=int))]) == 1.0  # other shape: all changed
    assert symbols_changed([]) == 1.0


def test_is_collapsed_and_reason_agree():
    assert is_collapsed(COLLAPSE_CHANGED / 2) and not is_collapsed(COLLAPSE_CHANGED) and not is_collapsed(None)
    assert "symbols differ" in collapse_reason({"symbols_changed": 0.0})
    assert "silent input" in collapse_reason({"mel_distance": 2.0, "mel_distance_no_input": 2.0})
    assert collapse_reason({"symbols_changed": 0.5, "mel_distance": 1.0, "mel_distance_no_input": 3.0}) is None
