"""The start and the end of a training run, the same for every trainer.

`begin_run` resumes from `cfg.resume` ("latest" or a state directory; a state that does not fit the model
is one line, and `log.jsonl` loses the rows of the steps the resumed run repeats), writes `config.yaml` and
starts the trackers; `past_deadline` tells every process at once that `max_minutes` has run out; `print_summary` prints
what a run did when it ends. A trainer's config needs `out_dir`, `steps`, `stop_at`, `resume` and `log_with`;
its result is a `TrainResult` (or a subclass that adds fields).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tokenizer.utils.errors import ConfigError

from .checkpointing import load_state, resolve_resume
from .config import dump_config, to_dict
from .tracking import flat_hparams

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a run did: first and last step of this invocation, wall time (s), the last logged values (with
    evaluation metrics), the last export and state directories, every logged row."""

    start_step: int
    step: int
    seconds: float
    last_logs: dict
    export_dir: Path | None
    state_dir: Path | None
    history: list[dict] = field(default_factory=list)
    is_main_process: bool = True


@dataclass
class RunStart:
    """start: the first step to run (0, or the resumed state's); end: the step this invocation stops after;
    saved: the resumed state's `trainer.json` ({} on a fresh run); writer: the TensorBoard SummaryWriter of
    the main process, or None."""

    start: int
    end: int
    saved: dict
    writer: Any


def begin_run(accelerator, cfg: Any, project: str) -> RunStart:
    """Resume if asked (model, optimizer, scaler and RNG states), write `<out>/config.yaml`, start trackers."""
    out, main = Path(cfg.out_dir), accelerator.is_main_process
    saved: dict = {}
    if cfg.resume:
        state = resolve_resume(out, cfg.resume)
        try:
            saved = load_state(accelerator, state)
        except (RuntimeError, KeyError, ValueError) as exc:  # torch's size mismatch / missing keys: 100 lines
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"--resume from {state}: the saved state does not fit the model now configured "
                              f"({first[:200]}): resume with the settings it was started with (preset, "
                              f"model overrides)") from None
        if main:
            logger.info("resumed from %s (step %d)", state, saved["step"])
            trim_log(out / "log.jsonl", saved["step"])
    if main:
        out.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out / "config.yaml")
    if cfg.log_with not in (None, "none"):
        accelerator.init_trackers(project, config=flat_hparams(to_dict(cfg)))
    writer = accelerator.get_tracker("tensorboard", unwrap=True) if main and cfg.log_with == "tensorboard" else None
    return RunStart(start=saved.get("step", 0), end=min(cfg.steps, cfg.stop_at or cfg.steps), saved=saved,
                    writer=writer)


def trim_log(path: Path, step: int) -> None:
    """Drop the rows of `log.jsonl` after `step` (written before a kill by steps the resumed run repeats), so
    the log holds each step once."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if _row_step(line) <= step]
    if len(kept) != len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, path)
        logger.info("%s: dropped %d rows of steps after %d (repeated by this resumed run)", path,
                    len(lines) - len(kept), step)


def _row_step(line: str) -> float:
    try:
        return float(json.loads(line).get("step", 0))
    except (ValueError, AttributeError, TypeError):
        return 0.0  # a line cut short by the kill: kept as it is (json readers skip it)


def past_deadline(accelerator, deadline: float | None) -> bool:
    """True once any process is past `deadline` (a `time.time()` value; None: never). Every process must ask at
    every step: the answer is gathered, so all of them stop after the same step."""
    if deadline is None:
        return False
    over = torch.tensor([float(time.time() > deadline)], device=accelerator.device)
    return bool(accelerator.gather(over).max())


def print_summary(result: Any, total_steps: int, shown: dict, extra: str = "") -> None:
    """Steps run and their speed, the last logged values in `shown`, where the export and the state are."""
    ran = result.step - result.start_step
    print(f"trained steps {result.start_step}..{result.step} of {total_steps} in {result.seconds:.1f} s"
          f" ({result.seconds / max(ran, 1):.2f} s/step){extra}")
    if shown:
        print("last logged: " + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()))
    if result.export_dir:
        print(f"exported model: {result.export_dir}")
    if result.state_dir:
        print(f"resumable state: {result.state_dir}  (continue with --resume)")
