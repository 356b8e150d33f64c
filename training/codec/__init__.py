"""Codec trainer: one readable `accelerate` loop for every codec family.

    train-codec --config configs/codec/language_codec_tiny.yaml --data.root=DIR --steps=100

    from training.codec import list_utterances, load_config, train
    cfg = load_config("configs/codec/language_codec_small_16k.yaml", ["--steps=10"])
    result = train(cfg, list_utterances(cfg.data))

Files: `config.py` (the codec run's dataclasses, read by the shared `training.config` loader), `data.py`
(crops of the utterances it is given), `losses.py`, `discriminators.py`, `loop.py` (the loop), `cli.py`
(`train-codec`, which lists the corpus). Shared with the TTS trainers: `training.{config, schedule,
checkpointing, tracking}`.
"""

from .cli import list_utterances
from .config import TrainConfig, load_config
from .loop import TrainResult, build_model, train

__all__ = ["TrainConfig", "TrainResult", "build_model", "list_utterances", "load_config", "train"]
