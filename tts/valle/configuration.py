"""VALL-E configuration (Wang et al. 2023, arXiv 2301.02111) and its presets.

`paper`: the paper's AR and NAR, each 12 layers, 16 heads, width 1024, FFN 4096, dropout 0.1.
`small`: width 512, 8 heads, 6 layers, FFN 2048 (between lifeiteng's LJSpeech model, 256/8/6, and the
paper; sized for CPU synthesis benchmarks). `tiny`: width 128, 4 heads, 4 layers, FFN 512 (lifeiteng's
"nano"), for the sample corpus and the tests.

Training defaults per preset (`TRAIN_PRESETS`): the paper's AdamW to 5e-4 with 32k warm-up steps, linear
decay and 6k acoustic tokens per GPU; smaller presets scale steps, warm-up and batch down.
"""

from __future__ import annotations

from typing import ClassVar

from tokenizer.utils.errors import ConfigError

from ..layers import UNIT_SCALE
from ..model import TTSConfig

STAGES = ("both", "ar", "nar")


class ValleConfig(TTSConfig):
    """Architecture of a VALL-E AR + NAR pair (the same transformer size for both).

    `num_quantizers` K and `codebook_size` come from the shard manifest. With K = 1 (one FSQ stage) there
    is no NAR. `nar_tie_output`: NAR prediction layer of codebook j uses embedding j's weights (paper).
    `input_scale`: the factor the NAR's token embeddings (stored at std 0.02) are read with under its
    additive sinusoid (`tts.layers.ScaledEmbedding`: 50 = unit scale; 1 in exports written before it).

    Training schedule (recorded here so that the export says how it was trained):
    - `nar_stage_per_item`: the NAR codebook trained is drawn per batch item (each step trains several
      levels; the adaptive norms take a stage per item) instead of one per batch (lifeiteng, Amphion).
    - `ar_stop_top1`: with `--stage both`, the AR's loss is dropped for the rest of training once the
      running mean of its teacher-forced top-1 reaches this value, so that every later step goes to the
      NAR, which has 7 codebooks to learn to the AR's one. None: never. A corpus the AR cannot
      memorise never reaches it; the decision is kept in the model (`ar_stopped_at`), so resume repeats it.
    """

    model_type = "valle"
    PRESETS: ClassVar[tuple[str, ...]] = ("paper", "small", "tiny")

    hidden_size: int = 1024
    num_hidden_layers: int = 12
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    dropout: float = 0.1
    rope_theta: float = 10000.0
    nar_tie_output: bool = True
    input_scale: float = UNIT_SCALE
    nar_stage_per_item: bool = True
    ar_stop_top1: float | None = None

    def __post_init__(self, **kwargs):
        self.check_heads(self.hidden_size, self.num_attention_heads)
        if self.input_scale <= 0:
            raise ConfigError(f"input_scale={self.input_scale} must be > 0")
        if self.ar_stop_top1 is not None and not 0 < self.ar_stop_top1 <= 1:
            raise ConfigError(f"ar_stop_top1={self.ar_stop_top1}: need a top-1 accuracy in (0, 1], or None")
        super().__post_init__(**kwargs)

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        # Exports written before `input_scale` read the NAR's embeddings unscaled and drew one NAR stage per
        # batch: they load as such and decode exactly as before.
        legacy = {"input_scale": 1.0, "nar_stage_per_item": False}
        config_dict = {**{k: v for k, v in legacy.items() if k not in config_dict}, **config_dict}
        return super().from_dict(config_dict, **kwargs)

    @property
    def has_nar(self) -> bool:
        return self.num_quantizers > 1

    @property
    def audio_eos_id(self) -> int:
        """The AR's end-of-speech token: one past the last code."""
        return self.codebook_size

    @classmethod
    def paper(cls, **kw) -> "ValleConfig":
        return cls(**kw)

    @classmethod
    def small(cls, **kw) -> "ValleConfig":
        return cls(**{"hidden_size": 512, "num_hidden_layers": 6, "num_attention_heads": 8,
                      "intermediate_size": 2048, **kw})

    @classmethod
    def tiny(cls, **kw) -> "ValleConfig":
        return cls(**{"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
                      "intermediate_size": 512, "ar_stop_top1": 0.99, **kw})


# Training settings that differ from `tts.trainer.TrainConfig`'s defaults, per preset.
TRAIN_PRESETS: dict[str, dict] = {
    "paper": {"steps": 800_000, "optim": {"lr": 5e-4, "warmup_steps": 32_000}, "data": {"max_tokens": 6000}},
    "small": {"steps": 100_000, "optim": {"lr": 5e-4, "warmup_steps": 4000}, "data": {"max_tokens": 6000}},
    "tiny": {"steps": 1200, "optim": {"lr": 2e-3, "warmup_steps": 50}, "data": {"max_tokens": 4000},
             "eval_every": 500, "save_every": 500, "sample_every": 1000},
}
