"""The trainer's configuration: plain dataclasses read from YAML, with dotted command-line overrides.

    cfg = load_config("configs/codec/language_codec_tiny.yaml", ["--optim.lr=1e-4", "--steps=20"])

Every key has a default here, so a YAML file only says what differs. Unknown keys and values of the
wrong type raise `ConfigError` naming the key. Values are coerced to the field's type, so `lr: 1e-4`
(a string to YAML 1.1) is the float 0.0001.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from tokenizer.utils.errors import ConfigError

from .. import config as _config
from ..config import check_max_minutes, dump_config, get_dotted, merge, parse_overrides  # noqa: F401  (re-exported)
from ..schedule import SCHEDULES


@dataclass
class ModelConfig:
    """What to train: a registry codec built from a preset and field overrides, or a `save_pretrained`
    directory to continue from (`init_from`, which then wins over codec/preset/overrides)."""

    codec: str = "language_codec"
    preset: str | None = "tiny"
    overrides: dict = field(default_factory=dict)
    init_from: str | None = None
    freeze: list = field(default_factory=list)
    """Top-level submodules kept as they are, e.g. `[encoder, quantizer]` with `init_from`: only the decoder
    trains, so the tokens stay exactly those of `init_from` and every token shard and TTS model made with
    it stays valid. Frozen modules get no gradient, no optimizer state and stay in eval mode (no EMA
    codebook update, no dead-code reset). Quantizer dropout still draws K, which only the decoder sees."""


@dataclass
class DataConfig:
    """Training crops. `corpus`/`root`/`subsets` go to `data_prep.corpora.get_corpus`.

    holdout_speakers: an int N (the last N of the sorted speaker ids) or a list of speaker ids; their
    utterances form the evaluation set. speaker_from_filename: speaker = the file name's prefix before
    the first "-" or "_" (LibriSpeech `<speaker>-<chapter>-<utt>.flac` in a flat folder).
    Loudness: each utterance is scaled so its RMS is `target_dbfs` dBFS, then each crop gets a random
    gain uniform in [-gain_db, +gain_db] dB and is scaled down if its peak exceeds `peak`. Silence is kept.
    speed_factors: speed perturbation (Kaldi's 3-way recipe, Ko et al. 2015: 0.9 / 1.0 / 1.1), one factor
    drawn per crop; f plays the audio f times as fast (tempo and pitch both change), by polyphase
    resampling of a crop of f x segment samples. Empty or [1.0]: off.
    """

    corpus: str = "folder"
    root: str | None = None
    subsets: list | None = None
    speaker_from_filename: bool = False
    holdout_speakers: Union[int, list] = 0
    segment_seconds: float = 1.0
    batch_size: int = 8
    preload: bool = True
    num_workers: int = 0
    target_dbfs: float = -23.0
    gain_db: float = 6.0
    peak: float = 0.99
    speed_factors: list = field(default_factory=list)
    eval_items: int = 4
    eval_seconds: float = 4.0


@dataclass
class OptimConfig:
    """AdamW for the generator (and the discriminators at `disc_lr`, default `lr`).

    The learning rate is a pure function of the step: linear warm-up over `warmup_steps`, then
    `schedule` = "cosine" (down to `min_lr_ratio` x lr at the last step), "exponential"
    (lr x `gamma` ** steps after warm-up) or "constant". `grad_clip` <= 0 disables clipping.

    `entropy_lr_mult`: learning-rate multiplier of an entropy model's density parameters (models that
    expose `density_parameters()`, e.g. the Rate-Aware codec's factorized z prior), a parameter group of
    their own. Why 10: Adam moves a parameter by about lr per step, and sharpening the density of an unused
    z channel to a spike takes moves of 0.5-1, more than a 1200-step cosine run at 5e-4 allows; a z that
    carries nothing then still costs ~0.23 bits per element coded (training-audit section 1 and appendix
    A1: 180 bps at paper widths), and x10 removed that floor and cut z's coded rate 3-4x at unchanged D
    (small preset, lambda 0.8: 302 -> 82 bps and 342 -> 108 bps over two seeds). CompressAI's practice is
    the same idea: its entropy bottleneck's quantiles train with their own auxiliary optimizer at 10x the
    main rate (1e-3 vs 1e-4), while its densities get ~10^6 steps at the main rate, a budget a CPU study
    does not have. 1 gives a single group at `lr`.
    """

    lr: float = 2e-4
    disc_lr: float | None = None
    betas: list = field(default_factory=lambda: [0.8, 0.99])
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    grad_accum_steps: int = 1
    warmup_steps: int = 0
    schedule: str = "cosine"
    min_lr_ratio: float = 0.0
    gamma: float = 0.9999
    entropy_lr_mult: float = 10.0


GAN_REDUCTIONS = ("per_family", "sum", "mean")


@dataclass
class LossConfig:
    """Weights (0 disables a term) and settings of the generator losses (see `training/codec/losses.py`).

    Reconstruction terms (mel, multi_scale_spectral, stft_l1, time_l1, perceptual) are multiplied by
    max(recon_decay ** (step / recon_decay_steps), recon_decay_floor): set recon_decay < 1 to shift
    weight from reconstruction to the adversarial terms as training goes on (Stable Codec's gamma^k).
    `commit` weighs the model output's `commit_loss` (Language-Codec has already applied its config's
    `commitment_weight`). `stft_l1`: L1 between linear STFT magnitudes (Stable Codec Eq. 8: 2048 bins,
    hop 512, Hann). `perceptual_normalized`: each layer's L1 divided by the mean |target feature| (Stable
    Codec Eq. 9). `feature_matching_normalized`: the same normalisation for discriminator features.

    gan_reduction: how the adversarial and feature-matching terms combine sub-discriminators and layers
    before `adversarial` / `feature_matching` weigh them.
    - "per_family" (official Language-Codec / Vocos `experiment.py`): per discriminator family (mpd, mrd,
      msd, mstft) the mean over its sub-discriminators of the hinge term, and of the feature L1 summed
      over layers; the families summed. Official weights: adversarial 1, feature_matching 1.
    - "sum" (HiFi-GAN): everything summed over sub-discriminators and layers (HiFi-GAN: adversarial 1,
      feature_matching 2, mel 45).
    - "mean": the mean over all sub-discriminators (and all layers); the toolkit's rule before, which
      made weights meant for sums 2x (adversarial) and ~6x (feature matching) weaker.
    The discriminator's own hinge loss is reduced the same way.
    `perceptual_model`: a local transformers speech model directory (WavLM, HuBERT...), never downloaded.
    """

    mel: float = 45.0
    mel_n_fft: int = 1024
    mel_hop_length: int = 256
    mel_n_mels: int = 80
    multi_scale_spectral: float = 1.0
    mss_windows: list = field(default_factory=lambda: [32, 64, 128, 256, 512, 1024, 2048])
    stft_l1: float = 0.0
    stft_l1_n_fft: int = 2048
    stft_l1_hop_length: int = 512
    time_l1: float = 0.0
    commit: float = 1.0
    adversarial: float = 1.0
    feature_matching: float = 1.0
    feature_matching_normalized: bool = False
    gan_reduction: str = "per_family"
    recon_decay: float = 1.0
    recon_decay_steps: int = 1000
    recon_decay_floor: float = 0.0
    perceptual: float = 0.0
    perceptual_model: str | None = None
    perceptual_layers: list | None = None
    perceptual_sampling_rate: int = 16000
    perceptual_normalized: bool = True

    def __post_init__(self):
        if self.gan_reduction not in GAN_REDUCTIONS:
            raise ConfigError(f"loss.gan_reduction={self.gan_reduction!r} not one of {', '.join(GAN_REDUCTIONS)}")


@dataclass
class DiscConfig:
    """Which discriminators are active and how wide (see `training/codec/discriminators.py`).

    msd: the MelGAN / HiFi-GAN multi-scale waveform discriminator (`msd_scales` scales: 1x, 2x, 4x
    average-pooled; Language-Codec's paper uses it: without it PESQ fell 3.88 -> 3.51, its App. F).
    mstft (EnCodec's complex-STFT discriminator): Stable Codec sets `mstft_inharmonic` (its FFT sizes),
    `mstft_hop_divisor: 2` (hop = n_fft / 2), `mstft_normalized: true` and `mstft_spec_scale_pow: 0.5`
    (X |X|^0.5, App. B.5.1). `mstft_compress` is the earlier, inverted option (|X| -> |X|^c, raising quiet
    bins): kept so old run configs still load, it must stay 1.0.
    """

    mpd: bool = True
    mpd_periods: list = field(default_factory=lambda: [2, 3, 5, 7, 11])
    mpd_channels: int = 32
    mpd_max_channels: int = 1024
    mrd: bool = True
    mrd_resolutions: list = field(default_factory=lambda: [[512, 128, 512], [1024, 256, 1024], [2048, 512, 2048]])
    mrd_channels: int = 32
    msd: bool = False
    msd_scales: int = 3
    msd_channels: int = 128
    msd_max_channels: int = 1024
    mstft: bool = False
    mstft_n_ffts: list = field(default_factory=lambda: [1024, 2048, 512, 256, 128])
    mstft_inharmonic: bool = False
    mstft_hop_divisor: int = 4
    mstft_normalized: bool = False
    mstft_spec_scale_pow: float = 0.0
    mstft_compress: float = 1.0
    mstft_channels: int = 32

    def __post_init__(self):
        if self.mstft_compress != 1.0:
            raise ConfigError(
                f"disc.mstft_compress={self.mstft_compress} is no longer supported: it mapped |X| to |X|^c, "
                "raising quiet bins, the inverse of Stable Codec's weighting; use disc.mstft_spec_scale_pow=0.5 "
                "(X |X|^0.5) with disc.mstft_normalized=true and disc.mstft_hop_divisor=2")
        if self.mstft_hop_divisor < 1 or self.msd_scales < 1:
            raise ConfigError(f"disc.mstft_hop_divisor={self.mstft_hop_divisor} and disc.msd_scales="
                              f"{self.msd_scales} must be >= 1")

    @property
    def any(self) -> bool:
        return self.mpd or self.mrd or self.msd or self.mstft


@dataclass
class TrainConfig:
    """One training run. Outputs under `out_dir`: `state/step-N` (accelerate state for --resume),
    `export/step-N` and `final` (save_pretrained directories), TensorBoard logs and `log.jsonl`.

    objective: "reconstruction" (weighted losses) or "rate_distortion" (rate + lambda_rd x distortion,
    the rate being the model output's `rate_loss` in bits per audio sample; see `loop.py`). lambda_rd
    None (default) takes the model config's `rd_lambda`; a value given here is also written into the
    model config, so an exported checkpoint records the trade-off it was trained for.
    lambda_warmup_steps / lambda_warmup_start: anneal lambda geometrically from `lambda_warmup_start` to
    the run's lambda over the first `lambda_warmup_steps` steps (0: none). Trained from scratch at a low
    lambda, a model can collapse (nothing transmitted, D that of a decoder without input); starting at a
    higher lambda avoids it (training-audit section 2: 0.8 -> 0.05 over 400 of 1200 steps reached D 10.5
    where the plain run collapsed at 26.3). A start below the run's lambda is raised to it: the schedule
    never anneals upwards. The alternative is a warm start: `model.init_from` a higher-lambda export with
    `lambda_rd` set (weights from its model.safetensors; the optimizer starts fresh).
    stop_at: end this invocation after that step (state saved), to continue later with `--resume`;
    the LR schedule still spans `steps`. resume: "" (fresh), "latest" or a state directory.
    max_minutes: end this invocation after that much training time (state saved and the model exported to
    `final`), for a time-boxed machine; `--resume` continues on the same schedule (as the TTS trainer).
    mixed_precision: "bf16" / "fp16" on a GPU only (float32 elsewhere, with a warning); with the GAN
    prefer bf16, as accelerate's single fp16 loss scaler is updated after each of the two optimizers.
    """

    out_dir: str = "runs/codec"
    steps: int = 1000
    stop_at: int | None = None
    max_minutes: float | None = None
    seed: int = 0
    mixed_precision: str = "no"
    objective: str = "reconstruction"
    lambda_rd: float | None = None
    lambda_warmup_steps: int = 0
    lambda_warmup_start: float | None = None
    disc_start_step: int = 0
    log_every: int = 10
    eval_every: int = 500
    save_every: int = 500
    export_every: int = 1000
    keep_states: int = 2
    log_with: str | None = "tensorboard"
    find_unused_parameters: bool = False
    resume: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    disc: DiscConfig = field(default_factory=DiscConfig)

    def __post_init__(self):
        choices = {"objective": ("reconstruction", "rate_distortion"), "mixed_precision": ("no", "fp16", "bf16"),
                   "optim.schedule": SCHEDULES}
        for key, allowed in choices.items():
            value = get_dotted(self, key)
            if value not in allowed:
                raise ConfigError(f"{key}={value!r} not one of {', '.join(allowed)}")
        for key in ("steps", "data.batch_size", "optim.grad_accum_steps", "log_every", "eval_every",
                    "save_every", "export_every"):
            if get_dotted(self, key) < 1:
                raise ConfigError(f"{key}={get_dotted(self, key)} must be >= 1")
        check_max_minutes(self.max_minutes)
        if self.lambda_rd is not None and self.lambda_rd <= 0:
            raise ConfigError(f"lambda_rd={self.lambda_rd} must be > 0")
        if self.lambda_warmup_steps < 0 or (self.lambda_warmup_steps and not (self.lambda_warmup_start or 0) > 0):
            raise ConfigError(f"lambda_warmup_steps={self.lambda_warmup_steps} needs lambda_warmup_start > 0 (got "
                              f"{self.lambda_warmup_start})")
        if self.optim.entropy_lr_mult <= 0:
            raise ConfigError(f"optim.entropy_lr_mult={self.optim.entropy_lr_mult} must be > 0")
        if self.data.segment_seconds <= 0:
            raise ConfigError(f"data.segment_seconds={self.data.segment_seconds} must be > 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None) -> TrainConfig:
    """The codec trainer's config from a YAML file (or the defaults) with overrides applied."""
    return _config.load_config(TrainConfig, path, overrides)
