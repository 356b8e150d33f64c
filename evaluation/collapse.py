"""When a codec has collapsed: its symbols ignore the input, or its output is no better than what it makes of
silence. One definition for the codec trainer's held-out check and for `evaluate-codec`'s reports.

A collapsed model (an entropy model whose rate term won, a quantizer whose codes all went dead) can still
score plausible averages on some metrics, so both places test the cause directly: the share of symbol
positions that differ from the symbols the same model sends for silence of the same length.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

COLLAPSE_CHANGED = 0.01
"""A model whose symbols for a clip differ from its symbols for silence in fewer than this share of the
positions transmits (almost) nothing about the input."""
COLLAPSE_D_RATIO = 0.98
"""A reconstruction whose mel distance is above this fraction of the no-input reconstruction's is no better
than a decoder that ignores its input."""


def symbols_changed(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> float:
    """Share of symbol positions that differ between (symbols for the input, symbols for silence) pairs, over
    all pairs together (e.g. an entropy codec's y and z symbols, or one clip's codes (K, F)). A pair whose
    shapes differ counts as entirely changed; no positions at all gives 1.0 (nothing shows a collapse)."""
    changed = total = 0
    for symbols, silent in pairs:
        a, b = np.asarray(symbols), np.asarray(silent)
        changed += int((a != b).sum()) if a.shape == b.shape else a.size
        total += a.size
    return changed / total if total else 1.0


def is_collapsed(changed: float | None) -> bool:
    """True when a measured `symbols_changed` share is below `COLLAPSE_CHANGED` (None: not measured)."""
    return changed is not None and changed < COLLAPSE_CHANGED


def collapse_reason(scores: dict) -> str | None:
    """Why held-out `scores` show a collapsed model, or None. Collapsed: its symbols are those of silent input
    (`symbols_changed` under COLLAPSE_CHANGED), or its reconstructions are no closer (`mel_distance`) than
    what it makes of silent input of the same length (`mel_distance_no_input`). The rate keys
    (`bps_y_coded`, `bps_z_coded`, `code_entropy_bps`) are quoted when present."""
    reasons = []
    changed = scores.get("symbols_changed")
    if is_collapsed(changed):
        reasons.append(f"{100 * changed:.2f}% of its symbols differ from those of silent input (coded: y "
                       f"{scores.get('bps_y_coded', 0):.1f} + z {scores.get('bps_z_coded', 0):.1f} bps, symbol "
                       f"entropy {scores.get('code_entropy_bps', 0):.1f} bps)")
    d, d0 = scores.get("mel_distance"), scores.get("mel_distance_no_input")
    if d is not None and d0 is not None and np.isfinite(d) and np.isfinite(d0) and d >= COLLAPSE_D_RATIO * d0:
        reasons.append(f"mel distance {d:.3f} against {d0:.3f} for silent input")
    return "; ".join(reasons) or None
