"""Codec trainer: one readable `accelerate` loop for every codec family.

    train-codec --config configs/codec/language_codec_tiny.yaml --data.root=DIR --steps=100

    from tokenizer.train import load_config, train
    result = train(load_config("configs/codec/language_codec_small_16k.yaml", ["--steps=10"]))

Files: `config.py` (dataclasses, YAML, dotted overrides), `data.py` (corpus crops), `losses.py`,
`discriminators.py`, `loop.py` (the loop), `cli.py` (`train-codec`).
"""

from .config import TrainConfig, load_config
from .loop import TrainResult, build_model, train

__all__ = ["TrainConfig", "TrainResult", "build_model", "load_config", "train"]
