"""Generator and discriminator losses of the codec trainer. Audio is (B, 1, T) or (B, T) in [-1, 1].

- `MultiScaleSpectralLoss` (from `tokenizer/losses.py`, shared with the tests):
  Rate-Aware speech compression paper: log power and log mel spectra, L1 + L2, windows 2^5..2^11.
- `MelLoss`: L1 between log mel spectrograms (HiFi-GAN / Vocos).
- `stft_l1`: L1 between linear STFT magnitudes (Stable Codec Eq. 8).
- `time_l1`: L1 between waveforms.
- `discriminator_hinge_loss`, `generator_hinge_loss`: hinge GAN losses.
- `feature_matching_loss`: L1 between discriminator features of real and generated audio, optionally
  each layer divided by the mean magnitude of the real features (Stable Codec's normalised variant).
  The GAN terms combine sub-discriminators per family as the official Language-Codec code does (or
  summed as HiFi-GAN, or the mean): see `LossConfig.gan_reduction`.
- `PerceptualFeatureLoss`: L1 between hidden states of a frozen transformers speech model (WavLM,
  HuBERT, wav2vec 2.0) loaded from a local directory, each layer normalised (Stable Codec Eq. 9).
- `ReconstructionLoss`: the weighted sum of the reconstruction terms a `LossConfig` enables.
- `rate_distortion_loss`: L = R + lambda D for entropy-coded codecs.

Spectral terms are computed in float32 with autocast off, so mixed precision does not change them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tokenizer.utils.errors import ConfigError
from tokenizer.losses import MultiScaleSpectralLoss, flat_float
from tokenizer.modules.spectral import mel_filters, stft_magnitude
from .config import LossConfig


class MelSpectrogram(nn.Module):
    """Log mel magnitude spectrogram: (B, 1, T) -> (B, n_mels, frames), log(clamp(mel, 1e-5))."""

    def __init__(self, sampling_rate: int, n_fft: int = 1024, hop_length: int = 256, n_mels: int = 80):
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.register_buffer("fb", mel_filters(sampling_rate, n_fft, n_mels), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            mag = stft_magnitude(flat_float(x), self.n_fft, self.hop_length)
            return torch.log(torch.clamp(torch.einsum("bft,fm->bmt", mag, self.fb), min=1e-5))


class MelLoss(nn.Module):
    """Mean absolute difference of log mel spectrograms (HiFi-GAN / Vocos mel loss)."""

    def __init__(self, sampling_rate: int, n_fft: int = 1024, hop_length: int = 256, n_mels: int = 80):
        super().__init__()
        self.mel = MelSpectrogram(sampling_rate, n_fft, hop_length, n_mels)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(self.mel(pred), self.mel(target))


def time_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute waveform difference."""
    return F.l1_loss(flat_float(pred), flat_float(target))


def _reduce(per_disc: list[torch.Tensor], counts: list[int], groups: list[int] | None, reduction: str) -> torch.Tensor:
    """Combine per-sub-discriminator sums (`per_disc[i]` sums `counts[i]` terms) as `reduction` says
    (see `LossConfig.gan_reduction`); `groups`: sub-discriminators per family, in order (None: one family)."""
    if reduction == "mean":
        return torch.stack(per_disc).sum() / sum(counts)
    if reduction == "sum":
        return torch.stack(per_disc).sum()
    if reduction != "per_family":
        raise ConfigError(f"gan reduction {reduction!r} not one of per_family, sum, mean")
    groups = [len(per_disc)] if groups is None else list(groups)
    if sum(groups) != len(per_disc):
        raise ValueError(f"discriminator groups {groups} do not cover {len(per_disc)} sub-discriminators")
    bounds = [0, *torch.tensor(groups).cumsum(0).tolist()]
    return sum(torch.stack(per_disc[a:b]).mean() for a, b in zip(bounds[:-1], bounds[1:]))


def discriminator_hinge_loss(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor],
                             groups: list[int] | None = None, reduction: str = "per_family") -> torch.Tensor:
    """E[relu(1 - D(real))] + E[relu(1 + D(fake))] per sub-discriminator, combined by `reduction`
    ("per_family": mean within each family of `groups`, families summed; "sum"; "mean")."""
    terms = [F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real_logits, fake_logits)]
    return _reduce(terms, [1] * len(terms), groups, reduction)


def generator_hinge_loss(fake_logits: list[torch.Tensor], groups: list[int] | None = None,
                         reduction: str = "per_family") -> torch.Tensor:
    """E[relu(1 - D(fake))] per sub-discriminator, combined by `reduction` (as `discriminator_hinge_loss`)."""
    terms = [F.relu(1 - f).mean() for f in fake_logits]
    return _reduce(terms, [1] * len(terms), groups, reduction)


def feature_matching_loss(real_features: list[list[torch.Tensor]], fake_features: list[list[torch.Tensor]],
                          normalized: bool = False, groups: list[int] | None = None,
                          reduction: str = "per_family") -> torch.Tensor:
    """mean |f_fake - f_real| per (sub-discriminator, layer) (real features detached), summed over each
    sub-discriminator's layers, then combined by `reduction`: "per_family" (Vocos / official
    Language-Codec: the mean over a family's sub-discriminators, families summed), "sum" (HiFi-GAN) or
    "mean" (the mean over all (sub-discriminator, layer) pairs).

    normalized (Stable Codec): each layer's L1 is divided by the mean magnitude of its real features, so
    layers with large activations do not dominate.
    """
    per_disc, counts = [], []
    for reals, fakes in zip(real_features, fake_features):
        terms = []
        for r, f in zip(reals, fakes):
            r = r.detach()
            term = (f - r).abs().mean()
            if normalized:
                term = term / r.abs().mean().clamp_min(1e-8)
            terms.append(term)
        per_disc.append(torch.stack(terms).sum())
        counts.append(len(terms))
    return _reduce(per_disc, counts, groups, reduction)


def stft_l1(pred: torch.Tensor, target: torch.Tensor, n_fft: int = 2048, hop_length: int = 512) -> torch.Tensor:
    """Mean absolute difference of linear STFT magnitudes (Hann window of n_fft, centred frames): Stable
    Codec's L1(|X|, |X^|) (Eq. 8; 2048 bins, hop 512). Linear, not log: quiet bins count little."""
    with torch.autocast(pred.device.type, enabled=False):
        return F.l1_loss(stft_magnitude(flat_float(pred), n_fft, hop_length),
                         stft_magnitude(flat_float(target), n_fft, hop_length))


def fft_resample(x: torch.Tensor, orig_sr: int, target_sr: int) -> torch.Tensor:
    """Differentiable band-limited resampling of (B, T) by truncating / zero-padding the spectrum.

    Why not soxr (the audio path's resampler): a loss needs gradients through the resampler.
    """
    if orig_sr == target_sr:
        return x
    n = x.shape[-1]
    m = max(1, round(n * target_sr / orig_sr))
    spec = torch.fft.rfft(x, dim=-1)
    bins = m // 2 + 1
    spec = spec[..., :bins] if spec.shape[-1] >= bins else F.pad(spec, (0, bins - spec.shape[-1]))
    return torch.fft.irfft(spec, n=m, dim=-1) * (m / n)


class PerceptualFeatureLoss(nn.Module):
    """L1 between hidden states of a frozen speech model (`transformers.AutoModel` from a local directory).

    Audio is resampled (differentiably) from `sampling_rate` to `model_sampling_rate` and, when the
    directory's `preprocessor_config.json` says `do_normalize` (or has none), normalised to zero mean and
    unit variance per item. `layers`: indices into `hidden_states` (default: all). The model stays in eval
    mode with gradients off for its weights; gradients flow to the generated audio only.

    The loss is the mean over layers m of ||C_m(x) - C_m(x^)||_1 / mean |C_m(x)| over the batch (Stable
    Codec Eq. 9), so every layer counts alike however large its activations; `normalized=False` drops the
    division (plain mean L1 per layer).
    """

    def __init__(self, model_path: str, sampling_rate: int, model_sampling_rate: int = 16000,
                 layers: list[int] | None = None, normalized: bool = True):
        super().__init__()
        from transformers import AutoModel

        path = Path(model_path).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError(f"loss.perceptual_model={model_path!r} is not a local model directory with config.json")
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True).eval().requires_grad_(False)
        self.sampling_rate, self.model_sampling_rate = sampling_rate, model_sampling_rate
        self.layers = None if layers is None else [int(i) for i in layers]
        self.normalized = normalized
        pre = path / "preprocessor_config.json"
        self.normalize = bool(json.loads(pre.read_text()).get("do_normalize", True)) if pre.is_file() else True

    def train(self, mode: bool = True):  # the feature model never leaves eval mode (no dropout / layer drop)
        super().train(mode)
        self.model.eval()
        return self

    def features(self, audio: torch.Tensor) -> list[torch.Tensor]:
        x = fft_resample(flat_float(audio), self.sampling_rate, self.model_sampling_rate)
        if self.normalize:
            x = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + 1e-7)
        hidden = self.model(input_values=x, output_hidden_states=True).hidden_states
        return [hidden[i] for i in self.layers] if self.layers is not None else list(hidden)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            real = self.features(target)
        fake = self.features(pred)
        terms = [F.l1_loss(f, r) / (r.abs().mean().clamp_min(1e-8) if self.normalized else 1)
                 for f, r in zip(fake, real)]
        return torch.stack(terms).mean()


class ReconstructionLoss(nn.Module):
    """Weighted reconstruction terms from a `LossConfig`: mel, multi_scale_spectral, stft_l1, time_l1, perceptual.

    forward(pred, target, step) -> (weighted sum, {name: unweighted value}); weights are scaled by
    `recon_scale(step)` (the optional exponential decay). Terms with weight 0 are not computed.
    """

    def __init__(self, cfg: LossConfig, sampling_rate: int):
        super().__init__()
        self.cfg = cfg
        self.terms = nn.ModuleDict()
        if cfg.mel > 0:
            self.terms["mel"] = MelLoss(sampling_rate, cfg.mel_n_fft, cfg.mel_hop_length, cfg.mel_n_mels)
        if cfg.multi_scale_spectral > 0:
            self.terms["multi_scale_spectral"] = MultiScaleSpectralLoss(sampling_rate, tuple(cfg.mss_windows))
        if cfg.perceptual > 0:
            if not cfg.perceptual_model:
                raise ConfigError("loss.perceptual > 0 needs loss.perceptual_model (a local model directory)")
            self.terms["perceptual"] = PerceptualFeatureLoss(
                cfg.perceptual_model, sampling_rate, cfg.perceptual_sampling_rate, cfg.perceptual_layers,
                cfg.perceptual_normalized)

    def recon_scale(self, step: int) -> float:
        if self.cfg.recon_decay >= 1.0:
            return 1.0
        return max(self.cfg.recon_decay ** (step / self.cfg.recon_decay_steps), self.cfg.recon_decay_floor)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, step: int = 0) -> tuple[torch.Tensor, dict]:
        values = {name: term(pred, target) for name, term in self.terms.items()}
        if self.cfg.stft_l1 > 0:
            values["stft_l1"] = stft_l1(pred, target, self.cfg.stft_l1_n_fft, self.cfg.stft_l1_hop_length)
        if self.cfg.time_l1 > 0:
            values["time_l1"] = time_l1(pred, target)
        scale = self.recon_scale(step)
        total = sum(getattr(self.cfg, name) * scale * v for name, v in values.items())
        return (total if values else pred.new_zeros(())), values


def rate_distortion_loss(rate: torch.Tensor, distortion: torch.Tensor, lambda_rd: float) -> torch.Tensor:
    """The rate-distortion objective L = R + lambda_rd x D: R is the model output's `rate_loss` (estimated
    bits per audio sample), D the weighted reconstruction (and adversarial) terms."""
    return rate + lambda_rd * distortion
