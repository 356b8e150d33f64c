"""MobileSpeech configuration (Ji et al., ACL 2024, arXiv 2402.09378) and its presets.

What the paper fixes (tts-anchors.md §1): a phoneme encoder, a duration predictor and length regulator, a
prompt encoder over all prompt codebooks entering a Conformer "Speech Mask Decoder" (SMD) by
cross-attention, per-level weighting, three training regimes (first level fully masked, first level partly
masked, lower levels given and higher ones masked), "fine-grained prompt duration" from the prompt speech.
Its body (layer counts, steps, schedule, alignment) could not be read; every number below that is not one
of those facts is a choice, with its reason:

- Sizes. `paper`: width 768, 12 heads, FFN 3072 (each macaron half), a 12-layer SMD (SoundStorm's depth;
  MobileSpeech's SMD builds on SoundStorm), a 4-layer phoneme encoder (FastSpeech 2's 4), a 3-layer prompt
  encoder and a 2-layer duration predictor: 328M parameters with K = 8 x 1024 codes, under the 400M that
  the paper's demo page names as the limit for phones (SoundStorm's width 1024 would give 620M with these
  encoders). `small`: width 512, 8 heads, FFN 1024 per macaron half, SMD 6 layers (the width of VALL-E
  `small`, for the speed benchmark), 71M parameters (VALL-E `small`: 50M). `tiny`: width 128, 4 heads,
  2 + 1 + 3 layers, for the sample corpus and tests.
- Conformer kernel 15 (SoundStorm/ESPnet use 31 at 50-100 Hz frames; 15 covers 0.3 s at 50 Hz and keeps
  CPU cost down), kernel 7 in `tiny`.
- Training regimes per example (a level per example, as SoundStorm): with probability `first_level_prob`
  = 0.5 the first level is trained (the hardest one and the one most decoding steps are spent on), of
  which `full_mask_prob` = 0.2 fully masked (P_{1-alpha}, the first decoding step) and the rest partly
  masked at a cosine ratio (P_alpha); otherwise a level q in 2..K is trained with levels < q given
  (P_rank), q drawn uniformly (SoundStorm) and masked at a cosine ratio; levels > q are always masked.
  `tiny` trains level 1 on 0.3 of the examples (each higher level on 0.1 instead of 0.07): with 8 levels
  and a few hundred steps, levels 2..8 were the ones left under-trained.
  Cosine ratio: cos(pi/2 u), u ~ U(0, 1), at least one token (SoundStorm / MaskGIT).
- Per-level weighting ("weight mechanisms across codec layers"): the SMD input of a frame is a learned
  softmax-weighted sum of the K level embeddings (weights start equal), plus an embedding of the level
  being predicted; `level_loss_weights` (default all 1) weights the cross-entropy per level.
- Decoding: `steps_per_level` = (16, 1) for `paper`: 16 MaskGIT iterations for level 1, one for each higher
  level (SoundStorm's 16 + 1 per level; the last value repeats for further levels); (4, 1) for `small` and
  `tiny`: 11 decoder passes instead of 23, with no measured loss of WER or token accuracy on the tiny model
  (docs/reports/mobilespeech_step_budget: 23 down to 8 passes move token accuracy by < 0.01); cosine schedule;
  confidence re-masking with annealed Gumbel noise of scale `choice_temperature` = 4.5 (MaskGIT); the
  last iteration of a level is greedy (SoundStorm).
- Aligner input (`aligner_features`): "codec" (default) reads each frame as the codec's own latent, the sum
  of its codes' vectors from the codec's quantizer (`CodecTokenizer.code_vectors`, frozen, stored in the
  model; `aligner_feature_dim` = their width, set by the trainer from the codec); "codes" learns an
  embedding per code. Why: learned code embeddings memorised the training utterances' frames and aligned
  unseen ones worse than a uniform alignment (`tts.alignment`'s docstring has the numbers); the trainer
  falls back to "codes", with a warning, only for codecs without such a table.
- Input scale (`input_scale`): every token embedding (phonemes, codes, level) is read at unit RMS under
  the stacks' additive sinusoid (`tts.layers.ScaledEmbedding`); at std 0.02, as before, position drowned
  the content (exports written before load with `input_scale` = 1, unchanged).
- Durations: learned jointly by an aligner (`tts.alignment`, width `aligner_dim`); losses: SMD
  cross-entropy + `duration_loss_weight` x MSE of log(1 + d) + `align_loss_weight` x forward-sum loss;
  the beta-binomial prior guides the aligner for the first `prior_steps` training steps (RAD-TTS uses
  it throughout training; dropping it lets the durations follow the audio alone).
- Prompt duration ("fine-grained prompt duration extracted from the prompt speech"): the aligner gives
  the durations of the prompt's phonemes, and the duration predictor sees them (log(1 + d) and a
  "known" flag) on those phonemes, so it predicts the target's durations at the prompt speaker's pace.
  In training the phonemes that end inside the prompt are the known ones.
"""

from __future__ import annotations

from typing import ClassVar

from tokenizer.utils.errors import ConfigError

from ..layers import UNIT_SCALE
from ..model import TTSConfig


class MobileSpeechConfig(TTSConfig):
    """Architecture and training regimes of MobileSpeech (see the module docstring for the choices).

    `num_quantizers` K and `codebook_size` come from the shard manifest: K = 1 (one FSQ stage) is a
    single-level MaskGIT, K = 2..8 residual levels (RVQ, MCRVQ, residual FSQ) decode level by level.
    """

    model_type = "mobilespeech"
    PRESETS: ClassVar[tuple[str, ...]] = ("paper", "small", "tiny")

    hidden_size: int = 768
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    encoder_layers: int = 4
    prompt_encoder_layers: int = 3
    decoder_layers: int = 12
    duration_layers: int = 2
    conv_kernel_size: int = 15
    dropout: float = 0.1
    aligner_dim: int = 128
    aligner_features: str = "codec"
    aligner_feature_dim: int | None = None
    first_level_prob: float = 0.5
    full_mask_prob: float = 0.2
    level_loss_weights: list | None = None
    steps_per_level: list | None = None       # None: [16, 1]
    choice_temperature: float = 4.5
    duration_loss_weight: float = 1.0
    align_loss_weight: float = 1.0
    prior_steps: int = 2000
    input_scale: float = UNIT_SCALE

    def __post_init__(self, **kwargs):
        self.check_heads(self.hidden_size, self.num_attention_heads)
        if not 0 <= self.first_level_prob <= 1 or not 0 <= self.full_mask_prob <= 1:
            raise ConfigError(f"first_level_prob={self.first_level_prob}, full_mask_prob={self.full_mask_prob}: "
                              "need probabilities in [0, 1]")
        if self.level_loss_weights is not None and len(self.level_loss_weights) != self.num_quantizers:
            raise ConfigError(f"level_loss_weights has {len(self.level_loss_weights)} values for "
                              f"{self.num_quantizers} levels")
        if self.aligner_features not in ("codec", "codes"):
            raise ConfigError(f"aligner_features={self.aligner_features!r}: use 'codec' (the codec's code vectors) "
                              "or 'codes' (learned code embeddings)")
        if self.input_scale <= 0:
            raise ConfigError(f"input_scale={self.input_scale} must be > 0")
        if self.conv_kernel_size % 2 == 0:
            raise ConfigError(f"conv_kernel_size={self.conv_kernel_size} must be odd")
        steps = self.steps_per_level or [16, 1]
        if not steps or any(int(s) < 1 for s in steps):
            raise ConfigError(f"steps_per_level={steps}: need >= 1 step per level")
        super().__post_init__(**kwargs)

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        # Exports written before the aligner read the codec's code vectors have no `aligner_features`: they
        # learned code embeddings, and load as such.
        if "aligner_features" not in config_dict:
            config_dict = {**config_dict, "aligner_features": "codes"}
        # Exports written before `input_scale` read their token embeddings unscaled: they load as such.
        if "input_scale" not in config_dict:
            config_dict = {**config_dict, "input_scale": 1.0}
        return super().from_dict(config_dict, **kwargs)

    @property
    def mask_id(self) -> int:
        """The input token of a masked position: one past the last code."""
        return self.codebook_size

    def level_steps(self, steps: list | None = None) -> list[int]:
        """Decoding iterations per level (K values): `steps` or `steps_per_level`, the last value repeated."""
        steps = list(steps or self.steps_per_level or [16, 1])
        return [int(steps[min(k, len(steps) - 1)]) for k in range(self.num_quantizers)]

    @classmethod
    def paper(cls, **kw) -> "MobileSpeechConfig":
        return cls(**kw)

    @classmethod
    def small(cls, **kw) -> "MobileSpeechConfig":
        return cls(**{"hidden_size": 512, "num_attention_heads": 8, "intermediate_size": 1024, "encoder_layers": 4,
                      "prompt_encoder_layers": 2, "decoder_layers": 6, "aligner_dim": 96, "steps_per_level": [4, 1],
                      **kw})

    @classmethod
    def tiny(cls, **kw) -> "MobileSpeechConfig":
        return cls(**{"hidden_size": 128, "num_attention_heads": 4, "intermediate_size": 512, "encoder_layers": 2,
                      "prompt_encoder_layers": 1, "decoder_layers": 3, "duration_layers": 1, "conv_kernel_size": 7,
                      "aligner_dim": 64, "steps_per_level": [4, 1], "prior_steps": 300,
                      "first_level_prob": 0.3, **kw})


# Training settings that differ from `tts.trainer.TrainConfig`'s defaults, per preset: the seed paper's
# recipe (AdamW betas 0.9/0.95, 5k warm-up updates then linear decay, 3,500 codec frames per batch per GPU);
# smaller presets scale steps, warm-up and batch down.
TRAIN_PRESETS: dict[str, dict] = {
    "paper": {"steps": 300_000, "optim": {"lr": 5e-4, "warmup_steps": 5000}, "data": {"max_tokens": 4000}},
    "small": {"steps": 100_000, "optim": {"lr": 5e-4, "warmup_steps": 4000}, "data": {"max_tokens": 4000}},
    "tiny": {"steps": 1000, "optim": {"lr": 2e-3, "warmup_steps": 50}, "data": {"max_tokens": 4000},
             "eval_every": 500, "save_every": 500, "sample_every": 1000},
}
