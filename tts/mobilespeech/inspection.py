"""Look at what MobileSpeech's aligner learned: phoneme-to-frame log-likelihoods and MAS paths as a PNG.

    from tts.mobilespeech.inspection import plot_export_alignments
    plot_export_alignments("runs/ms-tiny/final", ["tokens/sample"], "align.png", num=4)
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ..alignment import hard_alignment, plot_alignments
from ..data import TTSCorpus, Utterance
from ..registry import load_model


@torch.no_grad()
def utterance_alignments(model, utterances: Sequence[Utterance]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(log-likelihood (P, T), MAS path (P, T)) of each whole utterance under `model`'s aligner."""
    out = []
    device = next(model.parameters()).device
    for u in utterances:
        ph, codes = u.phonemes.long().to(device)[None], u.codes.long().to(device)[None]
        lengths = torch.tensor([ph.shape[1]], device=device), torch.tensor([codes.shape[-1]], device=device)
        ll = model.align(ph, lengths[0], codes, lengths[1], prior=False)
        out.append((ll[0].cpu(), hard_alignment(ll, *lengths)[0].cpu()))
    return out


def plot_model_alignments(model, utterances: Sequence[Utterance], path: str | Path,
                          phoneme_tokens: Sequence[str] | None = None) -> Path:
    """PNG of the aligner's log-likelihood and MAS path for each utterance; y labels are phonemes when
    `phoneme_tokens` (the vocabulary, id = position) is given."""
    pairs = utterance_alignments(model, utterances)
    labels = None
    if phoneme_tokens:
        labels = [[phoneme_tokens[int(i)] if int(i) < len(phoneme_tokens) else "?" for i in u.phonemes] for u in utterances]
    titles = [f"{u.id}: {u.num_frames} frames, {len(u.phonemes)} phonemes" for u in utterances]
    return plot_alignments([p[0] for p in pairs], [p[1] for p in pairs], path, titles, labels)


def plot_export_alignments(export_dir: str | Path, data_dirs: Sequence[str | Path], path: str | Path,
                           num: int = 4) -> Path:
    """PNG of the alignments of the first `num` utterances (by id) of `data_dirs` under the export's aligner."""
    model = load_model(export_dir)
    corpus = TTSCorpus.load([str(d) for d in data_dirs], valid_utterances=0)
    utts = sorted(corpus.train + corpus.valid, key=lambda u: u.id)[:num]
    return plot_model_alignments(model, utts, path, model.config.phoneme_tokens)
