"""One error wrapper for every console script: a user error becomes one line, never a traceback.

    def main(argv=None) -> int:
        return run_cli("tokenize-corpus", _main, argv)

`ToolkitError` (alias `CodecError`; with its subclasses: corpus, config, audio and TTS input errors) prints `prog: error: message`
to stderr and returns 2; Ctrl-C prints `prog: interrupted: re-run the same command to resume` and
returns 130; a full disk (`OSError` ENOSPC) names the file and returns 1. Anything else is a bug and
keeps its traceback. Logging is configured once here (INFO, `levelname name: message`), with the chatty
third-party loggers and transformers' progress bars turned down.
"""

from __future__ import annotations

import errno
import logging
import contextlib
import sys
from typing import Callable, Iterator

from .errors import ToolkitError

QUIET_LOGGERS = ("accelerate", "httpx", "urllib3", "filelock", "huggingface_hub", "phonemizer", "numba",
                 "matplotlib", "fsspec", "datasets")


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def fail(prog: str, message: str, code: int = 2) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def run_cli(prog: str, main: Callable[..., int], *args, **kwargs) -> int:
    """Run `main(*args, **kwargs)` and turn user errors into one line on stderr (see module docstring)."""
    configure_logging()
    try:
        return int(main(*args, **kwargs) or 0)
    except ToolkitError as exc:
        return fail(prog, str(exc))
    except KeyboardInterrupt:
        print(f"{prog}: interrupted: re-run the same command to resume", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" writing {exc.filename}" if exc.filename else ""
            return fail(prog, f"disk full{where}: free space and re-run the same command to resume", 1)
        raise


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Silence transformers' "Loading weights" / "Writing model shards" bars (transformers 5 draws one
    per `from_pretrained` / `save_pretrained`), then restore the previous state of transformers' and
    huggingface_hub's progress-bar switches, so a user's own setting survives."""
    # Imported here, not at the top: `import tokenizer` stays light until a model is loaded or saved.
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging as hf_logging

    bars_were_on, hub_was_off = hf_logging.is_progress_bar_enabled(), are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
        (disable_progress_bars if hub_was_off else enable_progress_bars)()
