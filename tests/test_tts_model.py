"""VALL-E model: KV cache == recomputation, batched == one at a time, one-batch overfitting, generation limits."""

import pytest
import torch

from tts.data import collate
from tts.errors import TTSError
from tts.generation import GenerationConfig, filter_logits, sample_next
from tts.valle import ValleConfig, ValleModel

K, V, PV = 4, 16, 24


def small_model(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = ValleConfig.tiny(**{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                              "intermediate_size": 64, "num_quantizers": K, "codebook_size": V,
                              "phoneme_vocab_size": PV, "frame_rate": 50.0, "dropout": 0.0, **kw})
    return ValleModel(cfg)


def items(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        p, f = 5 + 2 * i, 10 + 4 * i
        ph = torch.randint(4, PV, (p,), generator=g)
        codes = torch.randint(0, V, (K, f), generator=g)
        out.append((f"u{i}", ph, codes[:, :4], codes[:, 4:]))
    return out


def test_kv_cache_greedy_equals_recomputation_token_for_token():
    model = small_model()
    its = items()
    # min_frames keeps EOS away so both decoders run long sequences (60 steps)
    kw = dict(do_sample=False, min_frames=60, max_seconds_per_phoneme=60 / 5 / 50)
    cached = model.generate([x[1] for x in its], [x[2] for x in its], [5, 5, 5], GenerationConfig(**kw))
    plain = model.generate([x[1] for x in its], [x[2] for x in its], [5, 5, 5],
                           GenerationConfig(use_cache=False, **kw))
    assert [c.shape[-1] for c in cached] == [60, 60, 60]
    for a, b in zip(cached, plain):
        assert torch.equal(a, b)


def test_static_cache_equals_dynamic_cache_and_recomputation():
    """The preallocated cache (the default) gives the tokens of transformers' DynamicCache and of recomputing
    the whole sequence: greedy token for token on left-padded items of different lengths, and the same
    sampled tokens for a fixed seed."""
    from tts.valle.decoding import StaticCacheDecoder

    model = small_model(2, num_attention_heads=4).eval()
    its = items(3, seed=5)
    ph, pr = [x[1] for x in its], [x[2][0] for x in its]
    for kw in (dict(do_sample=False, min_frames=40), dict(do_sample=True, seed=11, min_frames=40)):
        static = model.ar.generate(ph, pr, [40] * 3, GenerationConfig(**kw))
        dynamic = model.ar.generate(ph, pr, [40] * 3, GenerationConfig(static_cache=False, **kw))
        plain = model.ar.generate(ph, pr, [40] * 3, GenerationConfig(use_cache=False, **kw))
        assert [len(t) for t in static] == [40] * 3
        assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(static, dynamic, plain))
    # the hidden states themselves agree with transformers' forward, also at a padded batch's real positions
    x = torch.randn(2, 6, 32)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    pos = torch.tensor([[0, 0, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5]])
    ref = model.ar.backbone(inputs_embeds=x, attention_mask=mask, position_ids=pos).last_hidden_state[:, -1]
    dec = StaticCacheDecoder(model.ar.backbone, 2, 7)
    assert torch.allclose(dec.prefill(x, mask, pos), ref, atol=1e-5)
    step = torch.randn(2, 1, 32)
    ref2 = model.ar.backbone(inputs_embeds=torch.cat([x, step], 1), attention_mask=torch.cat([mask, torch.ones(2, 1,
                             dtype=torch.long)], 1), position_ids=torch.cat([pos, pos[:, -1:] + 1], 1)).last_hidden_state
    assert torch.allclose(dec.step(step, pos[:, -1:] + 1), ref2[:, -1], atol=1e-5)
    with pytest.raises(ValueError, match="static cache full"):
        dec.step(step, pos[:, -1:] + 2)


def test_batched_equals_one_at_a_time_greedy_and_seeded_sampling_repeats():
    model = small_model(1)
    its = items(4, seed=3)
    counts = [5, 6, 7, 8]
    cfg = GenerationConfig(do_sample=False, min_frames=8, max_seconds_per_phoneme=0.2)
    batched = model.generate([x[1] for x in its], [x[2] for x in its], counts, cfg)
    for x, n, b in zip(its, counts, batched):
        assert torch.equal(model.generate([x[1]], [x[2]], [n], cfg)[0], b)
    sampled = GenerationConfig(do_sample=True, seed=7, max_seconds_per_phoneme=0.2)
    first = model.generate([x[1] for x in its], [x[2] for x in its], counts, sampled)
    again = model.generate([x[1] for x in its], [x[2] for x in its], counts, sampled)
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_generation_stops_at_max_length_tied_to_phonemes():
    model = small_model(2)
    its = items(2)
    cfg = GenerationConfig(do_sample=False, min_frames=1000, max_seconds_per_phoneme=0.1)
    out = model.generate([x[1] for x in its], [x[2] for x in its], [3, 6], cfg)
    assert [o.shape[-1] for o in out] == [cfg.max_frames(3, 50.0), cfg.max_frames(6, 50.0)] == [15, 30]
    assert all(o.shape[0] == K and int(o.max()) < V for o in out)  # EOS never leaks into the codes


def _overfit(stage, steps):
    model = small_model(4, hidden_size=64, intermediate_size=128)
    model.set_train_stage(stage)
    batch = collate(items(3, seed=5))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(steps):
        torch.manual_seed(step)
        loss = model(batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, batch


def test_ar_overfits_one_batch():
    model, batch = _overfit("ar", 150)
    m = model(batch).metrics
    assert m["ar/top1"] > 0.95 and "nar/loss" not in m


def test_nar_overfits_one_batch_every_stage():
    model, batch = _overfit("nar", 150)
    for stage in range(1, K):
        m = model(batch, stage=stage).metrics
        assert m[f"nar/top1_q{stage + 1}"] > 0.95, m
        assert "ar/loss" not in m


def test_single_codebook_has_no_nar_and_generates():
    model = small_model(num_quantizers=1)
    assert model.nar is None
    with pytest.raises(TTSError, match="one codebook"):
        model.set_train_stage("nar")
    g = torch.Generator().manual_seed(0)
    batch = collate([("a", torch.randint(4, PV, (5,), generator=g), torch.randint(0, V, (1, 3), generator=g),
                      torch.randint(0, V, (1, 6), generator=g))])
    assert set(model(batch).metrics) >= {"ar/loss", "loss"}
    out = model.generate([batch.phonemes[0]], [batch.prompt[0]], [5], GenerationConfig(do_sample=False))
    assert out[0].shape[0] == 1


def test_sampler_filters_and_repetition_guard():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    assert torch.isinf(filter_logits(logits, 2, 1.0)[0, :2]).all()
    kept = filter_logits(logits, 0, 0.5)[0]
    assert torch.isfinite(kept).tolist() == [False, False, False, True]
    # RAS: a token that fills the window is re-drawn from the full distribution
    peaked = torch.tensor([[10.0, 0.0, 0.0, 9.9]])
    cfg = GenerationConfig(do_sample=True, top_p=0.5, ras_window=4, ras_threshold=0.5, seed=0)
    g = torch.Generator().manual_seed(0)
    draws = [int(sample_next(peaked, cfg, [[0, 0, 0, 0]], g)[0]) for _ in range(40)]
    assert 3 in draws  # without RAS top_p=0.5 only ever gives 0
    with pytest.raises(TTSError):
        GenerationConfig(temperature=0)
