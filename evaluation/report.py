"""Report files shared by `evaluate-codec` and `evaluate-tts`: the resumable per-utterance CSV,
summary statistics, Markdown tables, rate-distortion plots and spectrogram comparisons (matplotlib,
Agg backend, PNG)."""

from __future__ import annotations

import csv
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from tokenizer.utils.errors import CodecError
from .metrics import COLUMN_LABELS, HIGHER_IS_BETTER


# ------------------------------------------------------------------------------------ per-utterance CSV
def safe_name(name: str) -> str:
    """A file-name-safe version of a system or utterance name."""
    return re.sub(r"[^\w.=,@+-]", "_", str(name))


def _parse(value: str) -> Any:
    if value == "":
        return None
    try:
        return float(value)
    except ValueError:
        return value


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))  # exact round trip; NaN as "nan"
    return str(value)


class ResultStore:
    """Per-utterance results in a CSV, one row appended (and flushed) as soon as it is computed, so a
    killed run loses at most the row in progress and a rerun skips the rows already there.

    Rows are keyed by the `key` columns; `text_columns` hold strings, every other value is read back as
    a float (None for an empty cell). Columns: `columns` plus any found in an existing file; when a
    rerun asks for new columns the file is rewritten once with the union header, and rows lacking a
    requested column count as not done (recomputed rows are appended; the last row of a key wins).
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str], key: Sequence[str] = ("system", "id"),
                 text_columns: Sequence[str] = ()):
        self.path = Path(path)
        self.key = tuple(key)
        self.text_columns = set(self.key) | set(text_columns)  # kept as strings ("" included), never parsed
        self._rows: dict[tuple, dict[str, Any]] = {}
        header: list[str] = []
        if self.path.is_file() and self.path.stat().st_size > 0:
            with open(self.path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                header = list(reader.fieldnames or [])
                missing = [k for k in self.key if k not in header]
                if missing:
                    raise CodecError(f"{self.path} is not a results file of this tool (no column(s) {missing})")
                for row in reader:
                    parsed = {k: (v if k in self.text_columns else _parse(v)) for k, v in row.items() if k is not None}
                    self._rows[tuple(row[k] for k in self.key)] = parsed
        self.columns = list(dict.fromkeys([*self.key, *columns, *header]))
        if header != self.columns:
            self._rewrite()

    def _rewrite(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns)
            writer.writeheader()
            for row in self._rows.values():
                writer.writerow({c: _format(row.get(c)) for c in self.columns})
        os.replace(tmp, self.path)

    def done(self, key: Sequence[str], required: Iterable[str] = ()) -> bool:
        """True when a row for `key` exists and has a value (NaN counts) in every `required` column."""
        row = self._rows.get(tuple(key))
        return row is not None and all(row.get(c) is not None for c in required)

    def add(self, row: Mapping[str, Any], replace: bool = False) -> None:
        """Append a row; values of an earlier row of the same key that `row` does not set are kept, unless
        `replace` (then `row` is the whole row of its key: a recomputed row keeps nothing of the old one)."""
        unknown = [c for c in row if c not in self.columns]
        if unknown:
            raise CodecError(f"row has columns {unknown} not in {self.path}")
        key = tuple(str(row[k]) for k in self.key)
        old = {} if replace else self._rows.get(key, {})
        merged = {**old, **{k: v for k, v in row.items() if v is not None or k not in old}}
        merged.update({k: str(row[k]) for k in self.key})
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, fieldnames=self.columns).writerow({c: _format(merged.get(c)) for c in self.columns})
            f.flush()
        self._rows[key] = merged

    def rows(self) -> list[dict[str, Any]]:
        """The latest row of every key, in insertion order."""
        return list(self._rows.values())

    def get(self, key: Sequence[str]) -> dict[str, Any] | None:
        return self._rows.get(tuple(key))


# ------------------------------------------------------------------------------------ statistics
def describe(values: Iterable[Any]) -> dict[str, float]:
    """mean, std (population), 95% normal-approximation half-width and count of the finite values."""
    x = np.asarray([v for v in values if isinstance(v, (int, float)) and math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return {"mean": math.nan, "std": math.nan, "ci95": math.nan, "n": 0}
    std = float(x.std())
    return {"mean": float(x.mean()), "std": std, "ci95": float(1.96 * std / math.sqrt(x.size)), "n": int(x.size)}


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """JSON with NaN written as null (standard JSON has no NaN)."""
    def clean(v):
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, (float, np.floating)):
            return None if not math.isfinite(float(v)) else float(v)
        if isinstance(v, np.integer):
            return int(v)
        return v

    path = Path(path)
    path.write_text(json.dumps(clean(data), indent=2) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------ Markdown
def column_header(column: str) -> str:
    """Readable header with the direction arrow, e.g. "PESQ-WB ↑"."""
    label = COLUMN_LABELS.get(column, column)
    if column in HIGHER_IS_BETTER:
        label += " ↑" if HIGHER_IS_BETTER[column] else " ↓"
    return label


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def fmt_stat(stat: Mapping[str, float], digits: int = 3, total: int | None = None) -> str:
    """"mean ± std" (of the defined values), with " (n=k)" when only k of `total` values are defined;
    "n/a" when none is."""
    if not stat or not stat.get("n"):
        return "n/a"
    count = f" (n={stat['n']})" if total is not None and stat["n"] < total else ""
    return f"{fmt(stat['mean'], digits)} ± {fmt(stat['std'], digits)}{count}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_rate_distortion(curves: Mapping[str, Sequence[tuple[float, float, str]]], column: str,
                         path: str | os.PathLike) -> Path:
    """One line per family: points (bitrate bps, metric mean, label), log-scaled rate axis."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for family, points in curves.items():
        pts = sorted((r, m, lab) for r, m, lab in points if r > 0 and math.isfinite(m))
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=family)
        for r, m, lab in pts:
            ax.annotate(lab, (r, m), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("bitrate (bits per second, measured)")
    ax.set_ylabel(column_header(column))
    ax.set_title(f"Rate-distortion: {column_header(column)}")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_spectrograms(signals: Sequence[tuple[str, np.ndarray]], sampling_rate: int, path: str | os.PathLike,
                      n_fft: int = 512, hop_length: int = 128) -> Path:
    """Stacked log-magnitude spectrograms (dB, shared colour scale) of `(label, audio (T,))` pairs; a clip
    shorter than `n_fft` is zero-padded to it (scipy refuses a window longer than the signal)."""
    plt = _pyplot()
    from scipy.signal import stft

    specs = []
    for label, x in signals:
        x = np.asarray(x, dtype=np.float64)
        x = np.pad(x, (0, max(0, n_fft - x.size)))
        _, _, z = stft(x, fs=sampling_rate, nperseg=n_fft, noverlap=n_fft - hop_length)
        specs.append((label, 20 * np.log10(np.abs(z) + 1e-6)))
    top = max(float(s.max()) for _, s in specs)
    fig, axes = plt.subplots(len(specs), 1, figsize=(8, 1.8 * len(specs)), squeeze=False)
    duration = max(len(x) for _, x in signals) / sampling_rate
    for ax, (label, s) in zip(axes[:, 0], specs):
        ax.imshow(s, origin="lower", aspect="auto", vmin=top - 80, vmax=top, cmap="magma",
                  extent=(0, s.shape[1] * hop_length / sampling_rate, 0, sampling_rate / 2000))
        ax.set_xlim(0, duration)
        ax.set_ylabel("kHz")
        ax.set_title(label, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_histograms(columns: Mapping[str, Sequence[float]], path: str | os.PathLike) -> Path:
    """One histogram per column of per-utterance values (NaN dropped)."""
    plt = _pyplot()
    names = list(columns)
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(3.2 * max(1, len(names)), 3), squeeze=False)
    for ax, name in zip(axes[0], names):
        vals = [v for v in columns[name] if isinstance(v, float) and math.isfinite(v)]
        if vals:
            ax.hist(vals, bins=min(20, max(3, len(vals))))
        ax.set_title(column_header(name), fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
