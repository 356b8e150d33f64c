"""Resumable training state and exports, the same for every trainer.

Layout under a run directory: `state/step-N/` (`accelerate.save_state`: weights as safetensors, optimizer,
scaler and RNG states, plus our `trainer.json` written last, so a state without it is incomplete and
ignored), the newest `keep` states kept; exports (`save_pretrained` directories) are the trainer's own.
`accelerate.load_state` reads the torch files with `weights_only=True`; resume only from states you wrote.
"""

from __future__ import annotations

import contextlib
import errno
import json
import shutil
from pathlib import Path
from typing import Iterator

from tokenizer.utils.errors import ConfigError


def _step_of(path: Path) -> int:
    return int(path.name.split("-")[1])


def latest_state(out_dir: str | Path) -> Path | None:
    """The `state/step-N` directory with the largest N that finished writing (has trainer.json)."""
    states = [p for p in (Path(out_dir) / "state").glob("step-*") if (p / "trainer.json").is_file()]
    return max(states, key=_step_of, default=None)


def resolve_resume(out_dir: str | Path, resume: str) -> Path:
    """The state directory that `resume` ("latest" or a path) names; `ConfigError` when there is none."""
    out_dir = Path(out_dir)
    state = latest_state(out_dir) if resume == "latest" else Path(resume)
    if state is None:
        raise ConfigError(f"resume={resume!r}: no saved state under {out_dir / 'state'}")
    if not (state / "trainer.json").is_file():
        raise ConfigError(f"resume={resume!r}: {state} is not a trainer state")
    return state


def load_state(accelerator, state: Path) -> dict:
    """Restore model, optimizer, scaler and RNG states; returns the saved `trainer.json` (has "step")."""
    accelerator.load_state(str(state))
    return json.loads((state / "trainer.json").read_text())


@contextlib.contextmanager
def disk_errors(path: str | Path) -> Iterator[None]:
    """Turn a full disk reported by a library as its own exception (safetensors' `SafetensorError: ... No
    space left on device`) into the `OSError` ENOSPC that `run_cli` reports in one line, naming `path`."""
    try:
        yield
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - SafetensorError derives from Exception only
        text = str(exc)
        for code, needle in ((errno.ENOSPC, "No space left on device"), (errno.EDQUOT, "Disk quota exceeded")):
            if needle in text:
                raise OSError(code, needle, str(path)) from None
        raise


def save_state(accelerator, out_dir: str | Path, step: int, keep: int, extra: dict | None = None) -> Path:
    """Write `state/step-<step>` on every rank (accelerate gathers what it needs), `trainer.json` on the
    main process, then delete all but the newest `keep` finished states. Returns the state directory."""
    state_dir = Path(out_dir) / "state" / f"step-{step}"
    with disk_errors(state_dir):
        accelerator.save_state(str(state_dir))
    if accelerator.is_main_process:
        (state_dir / "trainer.json").write_text(json.dumps({"step": step, **(extra or {})}))
        old = sorted((Path(out_dir) / "state").glob("step-*"), key=_step_of)
        for stale in old[: max(len(old) - keep, 0)]:
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    return state_dir


def due(done: int, every: int, last: int) -> bool:
    """True at every `every`-th step and at the last step of the run."""
    return done % every == 0 or done == last
