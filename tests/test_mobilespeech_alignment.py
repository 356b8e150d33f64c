"""Durations without an external aligner (tts/alignment.py): the learned aligner + MAS recovers known
durations on synthetic data, the prefix search finds where a prompt ends, rounding keeps the total."""

import pytest
import torch

from tts.alignment import (AlignmentModule, beta_binomial_prior, durations_to_path, forward_sum_loss,
                           hard_alignment, length_regulate, plot_alignments, prefix_alignment, round_durations)

V = 24


pytestmark = pytest.mark.usefixtures("one_thread")


def synthetic(batch=8, seed=1):
    """Phoneme sequences (no phoneme twice in a row) and frames made from known durations: each phoneme id
    has its own codes, repeated for its duration."""
    g = torch.Generator().manual_seed(seed)
    phs, durs = [], []
    for _ in range(batch):
        n = int(torch.randint(6, 12, (1,), generator=g))
        p = [int(torch.randint(1, V, (1,), generator=g))]
        while len(p) < n:
            c = int(torch.randint(1, V, (1,), generator=g))
            if c != p[-1]:
                p.append(c)
        phs.append(torch.tensor(p))
        durs.append(torch.randint(1, 7, (n,), generator=g))
    P = torch.tensor([len(p) for p in phs])
    T = torch.tensor([int(d.sum()) for d in durs])
    ph = torch.zeros(batch, int(P.max()), dtype=torch.long)
    codes = torch.zeros(batch, 2, int(T.max()), dtype=torch.long)
    for i, (p, d) in enumerate(zip(phs, durs)):
        ph[i, : len(p)] = p
        frames = torch.repeat_interleave(p, d)
        codes[i, 0, : len(frames)], codes[i, 1, : len(frames)] = frames, (frames * 5) % V
    return ph, P, codes, T, durs


def test_learned_aligner_recovers_known_durations(tmp_path):
    torch.manual_seed(0)
    ph, P, codes, T, durs = synthetic()
    pm = torch.arange(ph.shape[1])[None] < P[:, None]
    fm = torch.arange(codes.shape[-1])[None] < T[:, None]
    aligner = AlignmentModule(V, 2, V, dim=32)
    opt = torch.optim.Adam(aligner.parameters(), 3e-3)
    prior = beta_binomial_prior(P.tolist(), T.tolist())
    untrained = hard_alignment(aligner(ph, pm, codes, fm), P, T).sum(-1).long()
    losses = []
    for step in range(60):
        ll = aligner(ph, pm, codes, fm, prior=prior if step < 20 else None)
        loss = forward_sum_loss(ll, P, T)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    ll = aligner(ph, pm, codes, fm).detach()
    path = hard_alignment(ll, P, T)
    found = path.sum(-1).long()
    for i, d in enumerate(durs):
        assert torch.equal(found[i, : len(d)], d), (i, found[i, : len(d)], d)
        assert int(path[i].sum()) == int(T[i]) and (path[i].sum(0)[: T[i]] == 1).all()  # each frame once
    assert losses[-1] < losses[0] / 2
    assert sum(torch.equal(untrained[i, : len(d)], d) for i, d in enumerate(durs)) < len(durs)  # not trivial
    png = plot_alignments([ll[i, : P[i], : T[i]] for i in range(2)], [path[i, : P[i], : T[i]] for i in range(2)],
                          tmp_path / "align.png", titles=["a", "b"])
    assert png.stat().st_size > 1000


def test_prefix_alignment_finds_where_the_prompt_ends():
    durations = torch.tensor([2, 3, 1, 4, 2, 3])
    full = durations_to_path(durations)  # (6, 15)
    ll = torch.where(full > 0, 0.0, -10.0)
    cut = 2 + 3 + 1 + 2  # the prompt ends inside phoneme 3
    got = prefix_alignment(ll[:, :cut])
    assert got.tolist() == [2, 3, 1, 2, 0, 0]
    assert int(got.sum()) == cut


def test_fewer_frames_than_phonemes_gets_even_durations():
    ll = torch.zeros(1, 5, 3)
    d = hard_alignment(ll, torch.tensor([5]), torch.tensor([3])).sum(-1)
    assert int(d.sum()) == 3 and d.max() <= 1


def test_rounding_keeps_the_total_and_length_regulator_repeats():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        real = torch.rand(17, generator=g) * 6
        ints = round_durations(real)
        assert int(ints.sum()) == round(float(real.double().sum()))
        assert (ints >= 0).all() and ((ints - real).abs() < 1).all()
        assert ((real.double().cumsum(0) - ints.cumsum(0)).abs() <= 0.5 + 1e-9).all()
    real = torch.full((10,), 1.44)  # plain rounding: 10 frames; the sum is 14.4
    assert int(torch.round(real).sum()) == 10 and int(round_durations(real).sum()) == 14
    states = torch.arange(3.0)[:, None].repeat(1, 2)
    out = length_regulate(states, torch.tensor([2, 0, 3]))
    assert out[:, 0].tolist() == [0, 0, 2, 2, 2]
