"""Phoneme durations in codec frames without an external aligner, and the length regulator.

Durations are **learned jointly** with the TTS model (Glow-TTS / VITS / RAD-TTS style), not computed once
and stored beside the shards. Why: the shards hold codes of one codec at one frame rate; durations stored
beside them would be one more artefact to keep in sync with every re-tokenization (another K, another
codec, another frame rate), and a separate aligner would need its own training run anyway. Learned jointly,
the aligner costs a few percent of a training step, always matches the shards in use, and is in the export,
where it doubles as MobileSpeech's "duration extractor" for the prompt at synthesis time.

How (RAD-TTS, "One TTS Alignment To Rule Them All", Badlani et al. 2022):
- `AlignmentModule`: small convolutional encoders of the phoneme ids (keys) and of the codec frames
  (queries), log-likelihood of frame t given phoneme j = log-softmax over j of -||q_t - k_j||^2 (plus, in
  training, a beta-binomial diagonal prior). A frame enters as the codec's own latent when the codec has
  a table of per-code vectors (`CodecTokenizer.code_vectors`: the sum over levels of its codes' vectors,
  frozen, kept in the model as a buffer), else as a sum of learned embeddings of its K codes. Why the
  codec's latent: it places acoustically alike frames near each other, which learned embeddings of
  categorical codes do not (two alike frames with different codes share nothing), and RAD-TTS's aligner
  likewise reads fixed acoustic features (mels). Measured on 269 Asterisk prompts of one voice (tiny
  aligner trained alone, 27 utterances held out, forward-sum loss without the prior, uniform = 5.76):
  learned code embeddings fit training utterances but end *above* uniform on held-out ones (8.13 after
  600 steps, rising from step 200: they memorise frames), the codec latent well below it (3.93;
  `benchmarks/aligner_generalisation.py`).
- `forward_sum_loss`: CTC over the phoneme sequence (every monotonic alignment summed), which makes the
  soft alignment converge.
- `hard_alignment`: monotonic alignment search (the `monotonic-alignment-search` package, Glow-TTS's Cython
  code) over that log-likelihood, under no_grad; durations = frames per phoneme (column sums).
- `prefix_alignment`: the same search when the frames cover only a prefix of the phonemes (a prompt cut
  from the start of an utterance): the best phoneme to end at is chosen by the search itself.

`round_durations` turns real-valued durations into integers whose cumulative sum follows the rounded
cumulative sum of the real ones, so the total frame count is kept; `length_regulate` repeats phoneme
states by durations. `plot_alignments` draws the log-likelihood and the MAS path of a few utterances.

Shapes: phonemes LongTensor (B, P); codes LongTensor (B, K, T); log-likelihoods (B, P, T); durations
LongTensor (B, P) in codec frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monotonic_alignment_search import maximum_path
from torch import nn

from tokenizer.utils.masking import length_mask

# Masked log-likelihoods: finite, because CTC's backward turns -inf inputs into NaN gradients.
NEG = -1e4


# ------------------------------------------------------------------------------------- the aligner
class AlignmentModule(nn.Module):
    """Phoneme-to-frame log-likelihoods from phoneme ids and codec frames (see the module docstring).

    phoneme_vocab_size: phoneme ids; num_quantizers / codebook_size: the codes K x V; dim: aligner width.
    code_dim: the width D of the codec's per-code vectors: frames are read through a frozen buffer
    `code_vectors` (K, V, D), filled by `set_code_vectors`; None: learned code embeddings.
    """

    def __init__(self, phoneme_vocab_size: int, num_quantizers: int, codebook_size: int, dim: int = 64,
                 code_dim: int | None = None):
        super().__init__()
        self.phoneme_embedding = nn.Embedding(phoneme_vocab_size, dim)
        if code_dim:
            self.register_buffer("code_vectors", torch.zeros(num_quantizers, codebook_size, code_dim))
            self.frame_in = nn.Linear(code_dim, dim)
            self.code_embeddings = nn.ModuleList()
        else:
            self.code_vectors = None
            self.code_embeddings = nn.ModuleList(nn.Embedding(codebook_size, dim) for _ in range(num_quantizers))
        # Phonemes and frames are encoded one by one (kernel 1). With context (RAD-TTS uses kernel 3) the
        # keys and queries can agree on a consistently shifted alignment (frame t matched to phoneme j+1),
        # which the forward-sum loss cannot tell apart from the right one; it did so on synthetic data.
        self.keys = nn.Sequential(nn.Conv1d(dim, 2 * dim, 1), nn.ReLU(), nn.Conv1d(2 * dim, dim, 1))
        self.queries = nn.Sequential(nn.Conv1d(dim, 2 * dim, 1), nn.ReLU(), nn.Conv1d(2 * dim, dim, 1),
                                     nn.ReLU(), nn.Conv1d(dim, dim, 1))
        for emb in (self.phoneme_embedding, *self.code_embeddings):
            nn.init.normal_(emb.weight, std=0.3)

    @torch.no_grad()
    def set_code_vectors(self, table: torch.Tensor) -> None:
        """Store the codec's per-code vectors (K, V, D), scaled so that a frame's latent (their sum over
        levels) has about unit RMS per channel. Why a global scale and not a per-frame norm: with FSQ's
        4-6 latent channels a per-frame normalization would throw away much of a frame."""
        if self.code_vectors is None or tuple(table.shape) != tuple(self.code_vectors.shape):
            want = None if self.code_vectors is None else tuple(self.code_vectors.shape)
            raise ValueError(f"code vectors of shape {tuple(table.shape)} for an aligner that takes {want}")
        centred = table.float() - table.float().mean(1, keepdim=True)
        rms = centred.pow(2).mean((1, 2)).sum().sqrt().clamp(min=1e-8)
        self.code_vectors.copy_(table.float() / rms)

    def frames(self, codes: torch.Tensor) -> torch.Tensor:
        """Frame features (B, T, A) of codes (B, K, T)."""
        if self.code_vectors is None:
            return sum(emb(codes[:, i]) for i, emb in enumerate(self.code_embeddings))
        latent = sum(F.embedding(codes[:, i], self.code_vectors[i]) for i in range(codes.shape[1]))
        return self.frame_in(latent)

    def forward(self, phonemes: torch.Tensor, phoneme_mask: torch.Tensor, codes: torch.Tensor,
                frame_mask: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        """Log-likelihood (B, P, T) of each frame given each phoneme, normalized over the phonemes of each
        frame; padding rows/columns are -inf / 0. Masks are bool, True on real positions. `prior`: optional
        log-prior (B, P, T) added before the normalization."""
        with torch.autocast(phonemes.device.type, enabled=False):  # distances of ~1e2 need float32
            k = self.keys((self.phoneme_embedding(phonemes) * phoneme_mask[..., None]).transpose(1, 2))  # (B, A, P)
            q = self.queries((self.frames(codes) * frame_mask[..., None]).transpose(1, 2))  # (B, A, T)
            logits = -squared_distances(k, q)
            if prior is not None:
                logits = logits + prior
            logits = logits.masked_fill(~phoneme_mask[:, :, None], NEG)
            logp = logits.log_softmax(dim=1)
            return logp.masked_fill(~frame_mask[:, None, :], 0.0).masked_fill(~phoneme_mask[:, :, None], 0.0)


def squared_distances(k: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """||k_j - q_t||^2 (B, P, T) of keys (B, A, P) and queries (B, A, T), as |k|^2 + |q|^2 - 2 k.q: one batched
    matmul instead of a (B, A, P, T) difference tensor (800 MB for 16 utterances of 200 phonemes x 1000
    frames at A = 64). Clamped at 0 against rounding."""
    kq = torch.bmm(k.transpose(1, 2), q)  # (B, P, T)
    return (k.pow(2).sum(1)[:, :, None] + q.pow(2).sum(1)[:, None, :] - 2 * kq).clamp(min=0)


def beta_binomial_prior(num_phonemes: Sequence[int], num_frames: Sequence[int], scale: float = 1.0) -> torch.Tensor:
    """Log beta-binomial prior (B, P_max, T_max) that favours the diagonal (RAD-TTS): for frame t of T,
    phoneme j of P has probability BetaBinom(j; P-1, a=scale*(t+1), b=scale*(T-t)). Padding is 0."""
    from scipy.stats import betabinom

    out = torch.zeros(len(num_phonemes), max(num_phonemes), max(num_frames))
    for i, (P, T) in enumerate(zip(num_phonemes, num_frames)):
        t = np.arange(1, T + 1)[:, None]
        pmf = betabinom(P - 1, scale * t, scale * (T + 1 - t)).pmf(np.arange(P)[None, :])  # (T, P)
        out[i, :P, :T] = torch.from_numpy(np.log(np.maximum(pmf, 1e-8)).T).float()
    return out


def forward_sum_loss(log_likelihood: torch.Tensor, num_phonemes: torch.Tensor, num_frames: torch.Tensor,
                     blank_logprob: float = -1.0) -> torch.Tensor:
    """RAD-TTS forward-sum loss: CTC of the phoneme sequence 1..P over the frames, where each frame's
    distribution is the phoneme log-likelihoods plus a blank. log_likelihood (B, P, T) from
    `AlignmentModule`; lengths (B,). Items with fewer frames than phonemes contribute 0."""
    B, P, T = log_likelihood.shape
    phoneme_mask = length_mask(num_phonemes, P)
    x = log_likelihood.masked_fill(~phoneme_mask[:, :, None], NEG)
    x = torch.cat([torch.full_like(x[:, :1], blank_logprob), x], dim=1)  # blank = class 0
    logp = x.log_softmax(dim=1).permute(2, 0, 1)  # (T, B, P+1)
    targets = torch.arange(1, P + 1, device=x.device)[None].expand(B, P)
    return F.ctc_loss(logp.float(), targets, num_frames, num_phonemes, blank=0, zero_infinity=True)


# ------------------------------------------------------------------------------------------ search
def _even_durations(num_phonemes: int, num_frames: int) -> torch.Tensor:
    return round_durations(torch.full((num_phonemes,), num_frames / num_phonemes))


@torch.no_grad()
def hard_alignment(log_likelihood: torch.Tensor, num_phonemes: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
    """Monotonic alignment search: 0/1 path (B, P, T), each frame on one phoneme, each phoneme >= 1 frame,
    phonemes in order. Durations are `path.sum(-1)`. An item with fewer frames than phonemes (no such path)
    gets even durations (some phonemes 0 frames)."""
    B, P, T = log_likelihood.shape
    pm = length_mask(num_phonemes, P)
    fm = length_mask(num_frames, T)
    mask = (pm[:, :, None] & fm[:, None, :]).float()
    path = maximum_path(log_likelihood.detach().float(), mask, implementation="cython").to(log_likelihood.device)
    for i in range(B):
        n, t = int(num_phonemes[i]), int(num_frames[i])
        if t < n:
            path[i] = 0
            path[i, :n, :t] = durations_to_path(_even_durations(n, t), t).to(path.device)
    return path


@torch.no_grad()
def prefix_alignment(log_likelihood: torch.Tensor) -> torch.Tensor:
    """Durations (P,) of one item's T frames over a *prefix* of its P phonemes (the phonemes after the last
    one reached get 0). log_likelihood (P, T).

    Why it is a plain MAS: P - 1 virtual frames of log-likelihood 0 for every phoneme are appended; every
    monotonic path then spends the real frames on phonemes 0..j and the virtual ones on j..P-1, scoring only
    the real frames, so the search picks the end phoneme j and the durations together.
    """
    P, T = log_likelihood.shape
    ext = torch.cat([log_likelihood.float(), log_likelihood.new_zeros(P, P - 1)], dim=1)
    path = maximum_path(ext[None], torch.ones_like(ext)[None], implementation="cython")[0]
    return path[:, :T].sum(-1).long()


def durations_to_path(durations: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
    """0/1 alignment (P, T) of integer durations (P,); T = sum, or `num_frames` (padding columns 0)."""
    ends = durations.long().cumsum(0)
    T = int(ends[-1]) if num_frames is None else num_frames
    t = torch.arange(T, device=durations.device)
    return ((t[None] < ends[:, None]) & (t[None] >= (ends - durations.long())[:, None])).float()


# ------------------------------------------------------------------------------ length regulation
def round_durations(durations: torch.Tensor) -> torch.Tensor:
    """Integer durations (..., P) >= 0 whose running sum is the rounded running sum of the real-valued
    `durations` (..., P) >= 0: the total is round(sum), and no phoneme is off by one frame or more (plain
    per-phoneme rounding drifts by up to P/2 frames)."""
    ends = torch.round(durations.double().clamp(min=0).cumsum(-1))
    return torch.diff(ends, dim=-1, prepend=torch.zeros_like(ends[..., :1])).long()


def length_regulate(states: torch.Tensor, durations: torch.Tensor) -> torch.Tensor:
    """Phoneme states (P, D) repeated by integer durations (P,) -> frame states (sum(durations), D)."""
    return torch.repeat_interleave(states, durations.long().clamp(min=0), dim=0)


# --------------------------------------------------------------------------------------- plotting
def plot_alignments(log_likelihoods: Sequence[torch.Tensor], paths: Sequence[torch.Tensor], path: str | Path,
                    titles: Sequence[str] | None = None, phoneme_labels: Sequence[Sequence[str]] | None = None) -> Path:
    """Save a PNG with, per utterance, its log-likelihood (P, T) as an image and its MAS path (P, T) on top.
    Returns the file written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(log_likelihoods)
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.6 * n), squeeze=False)
    for i, (ll, p) in enumerate(zip(log_likelihoods, paths)):
        ax = axes[i, 0]
        ax.imshow(ll.detach().float().cpu().numpy(), aspect="auto", origin="lower", interpolation="none",
                  cmap="viridis")
        ys, xs = np.nonzero(p.detach().cpu().numpy())
        ax.plot(xs, ys, "r.", markersize=2)
        ax.set_xlabel("codec frame")
        ax.set_ylabel("phoneme")
        if titles:
            ax.set_title(titles[i])
        if phoneme_labels and len(phoneme_labels[i]) < 80:
            ax.set_yticks(range(len(phoneme_labels[i])), list(phoneme_labels[i]), fontsize=6)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
