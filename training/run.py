"""The start and the end of a training run, the same for every trainer.

`begin_run` resumes from `cfg.resume` ("latest" or a state directory), writes `config.yaml` and starts the
trackers; `past_deadline` tells every process at once that `max_minutes` has run out; `print_summary` prints
what a run did when it ends. A trainer's config needs `out_dir`, `steps`, `stop_at`, `resume` and `log_with`;
its result is a `TrainResult` (or a subclass that adds fields).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

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
        saved = load_state(accelerator, state)
        if main:
            logger.info("resumed from %s (step %d)", state, saved["step"])
    if main:
        out.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out / "config.yaml")
    if cfg.log_with not in (None, "none"):
        accelerator.init_trackers(project, config=flat_hparams(to_dict(cfg)))
    writer = accelerator.get_tracker("tensorboard", unwrap=True) if main and cfg.log_with == "tensorboard" else None
    return RunStart(start=saved.get("step", 0), end=min(cfg.steps, cfg.stop_at or cfg.steps), saved=saved,
                    writer=writer)


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
