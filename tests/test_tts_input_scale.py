"""The VALL-E NAR reads the codes it conditions on (tts.layers.ScaledEmbedding; tts-review-3 §2).

A tiny corpus whose level q copies a fixed function of level q - 1 at the same frame for a share `FOLLOW[q]`
of the frames: a NAR that reads its lower levels gets at least that share right almost at once, and more on
the higher levels (accuracy rises with the level); one that barely sees them (the embeddings at std 0.02
under the unit sinusoid, `input_scale=1`, the code before the fix) is left memorising positions and stays
far below on every level after the same steps.
"""

import pytest
import torch

from tts.data import collate
from tts.layers import UNIT_SCALE, ScaledEmbedding
from tts.valle import ValleConfig, ValleModel

pytestmark = pytest.mark.usefixtures("one_thread")

K, V, PV, STEPS = 4, 64, 24, 40
FOLLOW = [0.0, 0.4, 0.6, 0.8]  # share of the frames where level q is a function of level q - 1


def corpus(n=8, frames=80, seed=0):
    g = torch.Generator().manual_seed(seed)
    maps = [torch.randperm(V, generator=g) for _ in range(K)]
    items = []
    for i in range(n):
        phonemes = torch.randint(4, PV, (20,), generator=g)
        codes = torch.randint(0, V, (K, frames), generator=g)
        for q in range(1, K):
            follow = torch.rand(frames, generator=g) < FOLLOW[q]
            codes[q] = torch.where(follow, maps[q][codes[q - 1]], codes[q])
        items.append((f"u{i}", phonemes, codes[:, :20], codes[:, 20:]))
    return collate(items)


def nar_accuracy_after_training(**overrides) -> list[float]:
    """Teacher-forced top-1 of levels 2..K after STEPS NAR updates on the whole corpus (AdamW, lr 2e-3)."""
    torch.manual_seed(0)
    cfg = ValleConfig.tiny(**{"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                              "intermediate_size": 128, "num_quantizers": K, "codebook_size": V,
                              "phoneme_vocab_size": PV, "frame_rate": 50.0, "dropout": 0.0, **overrides})
    model = ValleModel(cfg)
    model.set_train_stage("nar")
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    batch = corpus()
    for _ in range(STEPS):
        loss = model(batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return [model.nar.loss(batch, [q] * len(batch))[1][f"nar/top1_q{q + 1}"] for q in range(1, K)]


def reads_lower_levels(acc: list[float]) -> bool:
    return all(a >= 0.75 * FOLLOW[q] for q, a in enumerate(acc, start=1))


def test_nar_reads_lower_levels_accuracy_rises_with_level_and_old_scale_does_not():
    acc = nar_accuracy_after_training()
    assert reads_lower_levels(acc), acc
    assert acc == sorted(acc) and acc[-1] > acc[0] + 0.1, acc
    assert min(acc) > 10 / V, acc  # far above chance on every level
    legacy = nar_accuracy_after_training(input_scale=1.0)
    assert not reads_lower_levels(legacy), legacy
    assert sum(legacy) < 0.7 * sum(acc), (legacy, acc)


def test_scaled_embedding_reads_at_unit_scale_and_stores_small_weights():
    torch.manual_seed(0)
    emb = ScaledEmbedding(1000, 256)
    assert emb.weight.std().item() == pytest.approx(0.02, rel=0.05)  # a tied output layer starts near uniform
    x = emb(torch.arange(1000))
    assert x.pow(2).mean().sqrt().item() == pytest.approx(1.0, rel=0.05)
    old = ScaledEmbedding(10, 4, input_scale=1.0)
    assert torch.equal(old(torch.tensor([3])), old.weight[3:4])  # input_scale 1: the embedding as before
    assert UNIT_SCALE * 0.02 == pytest.approx(1.0)


def test_export_written_before_input_scale_loads_and_decodes_as_before(tmp_path):
    """An export whose config has no `input_scale` (and whose weights lack the AR-stop buffers) loads with the
    old unscaled inputs and generates exactly what the model that wrote it generates."""
    import json

    from safetensors.torch import load_file, save_file

    from tts.generation import GenerationConfig

    torch.manual_seed(0)
    cfg = ValleConfig.tiny(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                           num_quantizers=K, codebook_size=16, phoneme_vocab_size=PV, frame_rate=50.0,
                           input_scale=1.0, nar_stage_per_item=False)
    model = ValleModel(cfg).eval()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for key in ("input_scale", "nar_stage_per_item", "ar_stop_top1"):
        config.pop(key)
    (tmp_path / "config.json").write_text(json.dumps(config))
    weights = load_file(tmp_path / "model.safetensors")
    save_file({k: v for k, v in weights.items() if k not in ("ar_top1_mean", "ar_stopped_at", "num_updates")},
              tmp_path / "model.safetensors", metadata={"format": "pt"})

    loaded = ValleModel.from_pretrained(tmp_path).eval()
    assert loaded.config.input_scale == 1.0 and loaded.config.nar_stage_per_item is False
    g = torch.Generator().manual_seed(1)
    phonemes, prompt = torch.randint(4, PV, (8,), generator=g), torch.randint(0, 16, (K, 5), generator=g)
    gen = GenerationConfig(do_sample=False, min_frames=6, max_seconds_per_phoneme=0.1)
    assert torch.equal(loaded.generate([phonemes], [prompt], [8], gen)[0], model.generate([phonemes], [prompt], [8], gen)[0])
