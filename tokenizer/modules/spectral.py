"""STFT helpers shared by the codecs (analysis and synthesis) and the spectral losses.

- `stft_same` / `istft_same`: STFT and inverse with "same" padding (F = ceil(T / hop) frames, F * hop
  samples back), length-aware so a padded batch gives each item what it gets alone.
- `stft_magnitude`: |STFT| with a Hann window and torch's centre padding (the losses' spectrograms).
- `mel_filters`: Slaney mel filterbank from transformers' audio utilities.

Why hand-written "same" padding: `torch.istft` only offers "center" padding, which yields (F - 1) * hop
samples; the Vocos/Language-Codec head uses "same" padding (F * hop samples, trimming (win - hop) / 2 at
each end), and a padded batch needs the overlap-add window envelope of each item's own frames.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from transformers.audio_utils import mel_filter_bank

from ..utils.masking import length_mask


def stft_same(audio: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """STFT with "same" padding, the analysis twin of `istft_same`: (B, T) -> complex
    (B, n_fft // 2 + 1, ceil(T / hop)). Frame f covers samples [f hop - p, f hop - p + n_fft),
    p = (n_fft - hop) / 2, zeros outside the signal (so zero padding after an item changes none of its
    frames)."""
    T = audio.shape[-1]
    frames = -(-T // hop_length)
    pad = (n_fft - hop_length) // 2
    x = F.pad(audio, (pad, (frames - 1) * hop_length + n_fft - pad - T))
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    return torch.stft(x, n_fft, hop_length, window=window, center=False, return_complex=True)


def istft_same(spec: torch.Tensor, n_fft: int, hop_length: int, frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Inverse STFT with "same" padding. spec: complex (B, n_fft // 2 + 1, F) -> audio (B, F * hop).

    With `frame_lengths`, frames past each item's end are ignored (as if the item were alone).
    """
    B, _, T = spec.shape
    window = torch.hann_window(n_fft, device=spec.device, dtype=spec.real.dtype)
    pad = (n_fft - hop_length) // 2
    frames = torch.fft.irfft(spec, n_fft, dim=1, norm="backward") * window[None, :, None]
    env = window.square()[None, :, None].expand(B, n_fft, T)
    if frame_lengths is not None:
        valid = length_mask(frame_lengths, T)[:, None, :].to(frames.dtype)
        frames, env = frames * valid, env * valid
    size = (T - 1) * hop_length + n_fft
    fold = dict(output_size=(1, size), kernel_size=(1, n_fft), stride=(1, hop_length))
    y = F.fold(frames, **fold)[:, 0, 0, pad:-pad]
    envelope = F.fold(env, **fold)[:, 0, 0, pad:-pad]
    return y / envelope.clamp_min(1e-11)


def stft_magnitude(x: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """|STFT| of (B, 1, T) or (B, T) audio with a Hann window -> (B, n_fft // 2 + 1, frames)."""
    x = x.reshape(-1, x.shape[-1])
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    return torch.stft(x, n_fft, hop_length, window=window, return_complex=True).abs()


def mel_filters(sampling_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                f_max: float | None = None) -> torch.Tensor:
    """Slaney-normalised mel filterbank (n_fft // 2 + 1, n_mels) from transformers' audio utilities."""
    with warnings.catch_warnings():
        # Short windows have fewer frequency bins than low mel bands are wide, so some filters are empty:
        # they contribute log(eps) on both sides and thus nothing to the loss; the warning is noise here.
        warnings.simplefilter("ignore")
        fb = mel_filter_bank(n_fft // 2 + 1, n_mels, f_min, f_max or sampling_rate / 2, sampling_rate,
                             norm="slaney", mel_scale="slaney")
    return torch.from_numpy(fb).float()
