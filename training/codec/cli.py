"""`train-codec`: train a codec from a YAML config, with dotted overrides.

    train-codec --config configs/codec/language_codec_tiny.yaml --data.root=/data/wavs --steps=200
    train-codec --config CONFIG.yaml --resume                      # continue from <out>/state/step-N (latest)
    torchrun --nproc_per_node 2 -m training.codec.cli --config CONFIG.yaml
    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 -m training.codec.cli --config CONFIG.yaml

Any config key can be overridden as `--section.key=value` (values parsed as YAML: `--disc.mpd=false`,
`--disc.mpd_periods=[2,3]`); `--print-config` shows the merged config and exits.
"""

from __future__ import annotations

import argparse

import yaml

from data_prep.corpora import Utterance, get_corpus
from tokenizer.utils.cli import run_cli
from tokenizer.utils.errors import ConfigError

from ..run import print_summary
from .config import DataConfig, load_config
from .loop import train


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train-codec", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Overrides: --section.key=value for any key (see training/codec/config.py).")
    p.add_argument("--config", help="YAML training config (default: built-in defaults)")
    p.add_argument("--resume", nargs="?", const="latest", default=None,
                   help="continue from the latest <out_dir>/state/step-N, or from the given state directory")
    p.add_argument("--print-config", action="store_true", help="print the merged config and exit")
    return p


def list_utterances(cfg: DataConfig) -> list[Utterance]:
    """The training corpus named by `data.corpus` / `data.root` / `data.subsets`."""
    try:
        return list(get_corpus(cfg.corpus, cfg.root, cfg.subsets))
    except ValueError as exc:  # CorpusError is a ValueError: surface it as the config's fault
        raise ConfigError(f"data: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    return run_cli("train-codec", _main, argv)


def _main(argv: list[str] | None) -> int:
    args, rest = build_parser().parse_known_args(argv)
    overrides = list(rest)
    if args.resume is not None:
        overrides.append(f"--resume={args.resume}")
    cfg = load_config(args.config, overrides)
    if args.print_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    result = train(cfg, list_utterances(cfg.data))
    if not result.is_main_process:
        return 0
    shown = {k.split("/", 1)[1]: v for k, v in result.last_logs.items() if k.startswith(("loss/", "eval/"))}
    print_summary(result, cfg.steps, shown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
