"""MobileSpeech model (tts/mobilespeech): masking regimes, configs for K = 1..8, one-batch overfitting,
level-by-level decoding (schedule, speed, batched == one at a time, seeded), bad inputs."""

import pytest
import torch

from tokenizer.utils.errors import CodecError, ConfigError
from tts.data import collate
from tts.errors import TTSError
from tts.generation import GenerationConfig
from tts.mobilespeech import MaskDecodingConfig, MobileSpeechConfig, MobileSpeechModel
from tts.mobilespeech.decoding import decode_levels, remask_count
from tts.mobilespeech.masking import cosine_mask, draw_regime, masked_inputs

V = 32
SMALL = dict(hidden_size=64, num_attention_heads=4, intermediate_size=128, encoder_layers=1, decoder_layers=2,
             prompt_encoder_layers=1, duration_layers=1, aligner_dim=32, dropout=0.0, prior_steps=30)


pytestmark = pytest.mark.usefixtures("one_thread")


class FakeCodec:
    """What `MobileSpeechModel.for_codec` reads of a codec: a (K, V, D) table of per-code vectors."""

    def __init__(self, codebook_size=V, dim=12):
        self.codebook_size, self.dim = codebook_size, dim

    def code_vectors(self, num_quantizers):
        return torch.randn(num_quantizers, self.codebook_size, self.dim, generator=torch.Generator().manual_seed(1))


def model(K=3, codec=True, **kw):
    torch.manual_seed(0)
    cfg = MobileSpeechConfig.tiny(num_quantizers=K, phoneme_vocab_size=20, frame_rate=50.0,
                                  **{"codebook_size": V, **SMALL, **kw})
    if not codec:
        cfg.aligner_features = "codes"
    return MobileSpeechModel.for_codec(cfg, FakeCodec(cfg.codebook_size) if codec else None)


def items(n=3, K=3, seed=0, prompt=6):
    """Utterances whose codes follow their phonemes (each phoneme held 2..5 frames), prompt = first frames."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        P = int(torch.randint(5, 9, (1,), generator=g))
        ph = torch.randint(5, 20, (P,), generator=g)
        d = torch.randint(2, 6, (P,), generator=g)
        codes = torch.stack([torch.repeat_interleave(ph * (k + 1) % V, d) for k in range(K)])
        codes = (codes + torch.randint(0, 2, codes.shape, generator=g)) % V
        out.append((str(i), ph, codes[:, :prompt], codes[:, prompt:]))
    return out


# ------------------------------------------------------------------------------------------ regimes
def test_each_masking_regime_masks_what_it_says():
    K, F = 4, 50
    codes = torch.randint(0, V, (K, F))
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(300):
        r = draw_regime(F, K, first_level_prob=0.5, full_mask_prob=0.2, generator=g)
        x = masked_inputs(codes, r, V)
        seen.add(r.name)
        assert (x[r.level + 1 :] == V).all()                               # higher levels masked
        assert torch.equal(x[: r.level], codes[: r.level])                 # lower levels given
        assert torch.equal(x[r.level] == V, r.mask) and r.mask.any()       # the level: masked where it says
        assert torch.equal(x[r.level][~r.mask], codes[r.level][~r.mask])
        if r.name == "first_full":
            assert r.level == 0 and r.mask.all()
        elif r.name == "first_partial":
            assert r.level == 0
        else:
            assert r.name == "rank" and r.level >= 1
    assert seen == {"first_full", "first_partial", "rank"}
    ratios = torch.stack([cosine_mask(1000, g).float().mean() for _ in range(400)])
    assert abs(float(ratios.mean()) - 2 / torch.pi) < 0.05  # E[cos(pi/2 u)] = 2/pi
    one = [draw_regime(F, 1, 0.0, 0.2, g) for _ in range(50)]  # a single FSQ stage: first level only
    assert {r.level for r in one} == {0}


@pytest.mark.parametrize("K", [1, 3, 8])
def test_configs_for_one_to_eight_levels_and_presets(K):
    m = model(K=K, codebook_size=46656 if K == 1 else V)
    batch = collate(items(2, K=K) if K > 1 else [(i, p, c[:1], t[:1]) for i, p, c, t in items(2, K=3)])
    out = m(batch)
    assert torch.isfinite(out.loss) and len(m.heads) == K
    m.eval()
    assert all(f"smd/acc_q{q + 1}" in m(batch).metrics for q in range(K))
    assert m.config.level_steps() == [4] + [1] * (K - 1)  # tiny: (4, 1), docs/reports/mobilespeech_step_budget
    for name, first in (("paper", 16), ("small", 4), ("tiny", 4)):
        config = MobileSpeechConfig.preset(name, num_quantizers=K)
        assert config.num_quantizers == K and config.level_steps() == [first] + [1] * (K - 1)
    with pytest.raises(ConfigError):
        MobileSpeechConfig.preset("huge")
    with pytest.raises(ConfigError):
        MobileSpeechConfig(num_quantizers=3, level_loss_weights=[1.0])


def test_aligner_reads_the_codec_code_vectors_or_learns_embeddings(caplog):
    m = model(K=3)
    table = FakeCodec().code_vectors(3)
    assert m.config.aligner_features == "codec" and m.config.aligner_feature_dim == 12
    assert "aligner.code_vectors" in m.state_dict() and not any("code_vectors" in n for n, _ in m.named_parameters())
    ratio = m.aligner.code_vectors / table  # stored scaled: a frame's latent has ~unit RMS per channel
    assert torch.allclose(ratio, ratio.flatten()[0]) and len(m.aligner.code_embeddings) == 0
    codes = torch.randint(0, V, (2, 3, 9))
    latent = sum(table[k][codes[:, k]] for k in range(3))
    assert torch.allclose(m.aligner.frames(codes), m.aligner.frame_in(latent * ratio.flatten()[0]), atol=1e-5)
    learned = model(K=3, codec=False)
    assert learned.aligner.code_vectors is None and len(learned.aligner.code_embeddings) == 3
    assert "aligner.code_vectors" not in learned.state_dict()

    class NoTable:
        def code_vectors(self, k):
            raise CodecError("codec 'encodec' has no table of per-code latent vectors")

    cfg = MobileSpeechConfig.tiny(num_quantizers=3, codebook_size=V, phoneme_vocab_size=20, **SMALL)
    with caplog.at_level("WARNING"):
        fallback = MobileSpeechModel.for_codec(cfg, NoTable())
    assert fallback.config.aligner_features == "codes" and "encodec" in caplog.text
    with pytest.raises(ConfigError, match="aligner_feature_dim"):
        MobileSpeechModel(MobileSpeechConfig.tiny(num_quantizers=3, codebook_size=V, phoneme_vocab_size=20))
    with pytest.raises(ConfigError, match="aligner_features"):
        MobileSpeechConfig.tiny(num_quantizers=3, aligner_features="mels")


def test_exports_from_before_the_codec_vectors_load_with_learned_embeddings(tmp_path):
    import json

    old = model(K=3, codec=False)
    old.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for key in ("aligner_features", "aligner_feature_dim"):
        config.pop(key)
    (tmp_path / "config.json").write_text(json.dumps(config))
    again = MobileSpeechModel.from_pretrained(tmp_path)
    assert again.config.aligner_features == "codes"
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), again.state_dict().values()))


def test_exports_from_before_input_scale_load_unscaled_and_decode_as_before(tmp_path):
    import json

    old = model(K=3, input_scale=1.0).eval()
    old.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.pop("input_scale")
    (tmp_path / "config.json").write_text(json.dumps(config))
    again = MobileSpeechModel.from_pretrained(tmp_path).eval()
    assert again.config.input_scale == 1.0 and again.phoneme_embedding.input_scale == 1.0
    its = items(2)
    cfg = MaskDecodingConfig(do_sample=False)
    args = ([x[1] for x in its], [x[2] for x in its], [len(x[1]) for x in its], cfg)
    assert all(torch.equal(a, b) for a, b in zip(old.generate(*args), again.generate(*args)))


# ------------------------------------------------------------------------------------------ training
def test_tiny_overfits_one_batch():
    m = model()
    batch = collate(items(3))
    opt = torch.optim.AdamW(m.parameters(), 4e-3)
    first = None
    for step in range(120):
        out = m(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        first = first or out.metrics
    m.eval()
    ev = m(batch).metrics
    assert ev["smd/acc"] > 0.95, ev                      # masked-token accuracy, every level
    assert ev["duration/loss"] < min(0.05, first["duration/loss"] / 4), (first, ev)  # MSE of log(1 + d)
    assert int(m.num_updates) == 120


# ------------------------------------------------------------------------------------------ decoding
def test_cosine_schedule_unmasks_everything_in_the_given_steps():
    assert [remask_count(10, s, 4) for s in range(4)] == [10, 8, 4, 0]
    calls = []

    def logits_fn(tokens, level):
        calls.append((level, int((tokens[:, level] == V).sum())))
        return torch.randn(tokens.shape[0], tokens.shape[-1], V)

    torch.manual_seed(0)
    out = decode_levels(logits_fn, [10, 7], 3, [4, 2, 1], V, GenerationConfig(do_sample=True, seed=0), 4.5)
    assert [c[0] for c in calls] == [0, 0, 0, 0, 1, 1, 2]
    assert (out[0] < V).all() and (out[1, :, :7] < V).all() and (out[1, :, 7:] == V).all()
    assert calls[0][1] == 20 and calls[1][1] < 20  # all masked at first (padding stays masked), fewer each step


def test_batched_equals_one_at_a_time_greedy_and_sampled_and_seeded():
    m = model()
    its = items(3, seed=5)
    ph, pr = [i[1] for i in its], [i[2] for i in its]
    cross = [len(p) - 3 for p in ph]  # the last 3 phonemes are the text to say, the rest the prompt's
    for cfg in (MaskDecodingConfig(do_sample=False), MaskDecodingConfig(do_sample=True, seed=3, temperature=1.5)):
        batched = m.generate(ph, pr, cross, cfg)
        single = [m.generate([p], [q], [n], cfg)[0] for p, q, n in zip(ph, pr, cross)]
        for b, s in zip(batched, single):
            assert b.shape[0] == 3 and b.shape[1] >= 1 and torch.equal(b, s)
        assert all(torch.equal(a, b) for a, b in zip(batched, m.generate(ph, pr, cross, cfg)))
    cont = m.generate(ph, pr, [len(p) for p in ph], MaskDecodingConfig(do_sample=False))  # continuation
    assert all(c.shape[0] == 3 for c in cont)


def test_oracle_length_regulation_gives_the_frames_asked_for_and_reproduces_a_memorised_utterance():
    """`frame_phonemes` (evaluation with the aligner's durations): exactly that many frames, the duration
    predictor bypassed; after overfitting one batch, the decoded tokens equal the training tokens at the
    same frames (what the end-to-end benchmark's oracle score relies on)."""
    m = model()
    its = items(3)
    batch = collate(its)
    opt = torch.optim.AdamW(m.parameters(), 4e-3)
    for _ in range(150):
        out = m(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    m.eval()
    full = [torch.cat([x[2], x[3]], -1) for x in its]
    index = [m.frame_phonemes(x[1], f)[x[2].shape[-1]:] for x, f in zip(its, full)]
    assert all(int(i.min()) >= 0 and bool((i.diff() >= 0).all()) for i in index)  # monotonic phoneme path
    codes = m.generate([x[1] for x in its], [x[2] for x in its], [len(x[1]) for x in its],
                       MaskDecodingConfig(do_sample=False), frame_phonemes=index)
    assert [c.shape[-1] for c in codes] == [x[3].shape[-1] for x in its]
    match = sum(int((c == x[3]).sum()) for c, x in zip(codes, its)) / sum(x[3].numel() for x in its)
    assert match > 0.9, match


def test_speed_factor_scales_the_length():
    m = model()
    with torch.no_grad():
        m.duration_out.bias.fill_(2.0)  # ~6.4 frames per phoneme
        m.duration_out.weight.zero_()
    its = items(2)
    ph, pr = [i[1] for i in its], [i[2] for i in its]
    n = [len(p) - 2 for p in ph]
    normal = [c.shape[1] for c in m.generate(ph, pr, n, MaskDecodingConfig(do_sample=False))]
    fast = [c.shape[1] for c in m.generate(ph, pr, n, MaskDecodingConfig(do_sample=False, speed=2.0))]
    per_phoneme = float(torch.expm1(torch.tensor(2.0)))
    assert normal == [round(k * per_phoneme) for k in n]
    assert fast == [round(k * per_phoneme / 2) for k in n]
    capped = m.generate(ph, pr, n, MaskDecodingConfig(do_sample=False, max_seconds_per_phoneme=0.02))
    assert [c.shape[1] for c in capped] == n  # 1 frame per phoneme at 50 Hz


def test_bad_inputs():
    m = model()
    its = items(1)
    with pytest.raises(TTSError, match="prompt 0"):
        m.generate([its[0][1]], [torch.zeros(2, 5, dtype=torch.long)], [2])
    with pytest.raises(TTSError, match="speed"):
        MaskDecodingConfig(speed=0)
    with pytest.raises(TTSError, match="steps_per_level"):
        MaskDecodingConfig(steps_per_level=[0])
    with pytest.raises(TTSError, match="stage"):
        m.set_train_stage("ar")


def test_training_metrics_always_have_the_totals_and_the_levels_drawn():
    """Every batch logs the totals; per-level accuracy and loss for the levels its examples drew (the trainer
    merges keys that differ across processes: `tts.trainer.merge_process_metrics`)."""
    m = model(K=4)
    core = {"align/loss", "align/loss_no_prior", "duration/loss", "loss", "smd/acc", "smd/loss"}
    for n, s in ((1, 0), (2, 1), (4, 2), (1, 3)):
        torch.manual_seed(s)
        keys = set(m(collate(items(n, K=4, seed=s))).metrics)
        levels = keys - core
        assert core <= keys and levels and all(k.startswith(("smd/acc_q", "smd/loss_q")) for k in levels), keys


def test_no_prior_align_loss_is_logged_while_the_prior_trains_and_equals_the_loss_after():
    """align/loss includes the beta-binomial prior for `prior_steps` updates, then jumps when it leaves;
    align/loss_no_prior is the aligner's own fit throughout (what validation, which never uses the prior,
    reports), and validation also reports the uniform-likelihood bar."""
    torch.manual_seed(0)
    m = model(K=4)
    m.config.prior_steps = 1
    batch = collate(items(2, K=4, seed=0))
    m.train()
    with_prior = m(batch).metrics  # update 1: prior on
    m.num_updates.zero_()
    m.config.prior_steps = 0
    without = m(batch).metrics  # same weights, prior off
    assert with_prior["align/loss"] != pytest.approx(with_prior["align/loss_no_prior"])
    assert with_prior["align/loss_no_prior"] == pytest.approx(without["align/loss"], rel=1e-5)
    assert without["align/loss_no_prior"] == without["align/loss"]
    m.eval()
    valid = m(batch).metrics
    assert valid["align/loss"] == pytest.approx(without["align/loss"], rel=1e-5)
    assert valid["align/loss_uniform"] > 0 and "align/loss_uniform" not in without


def test_written_out_configs_equal_the_presets():
    from pathlib import Path

    from tts.trainer import load_train_config

    root = Path(__file__).resolve().parents[1] / "configs" / "tts"
    for preset in ("tiny", "paper"):
        assert load_train_config("mobilespeech", preset, str(root / f"mobilespeech_{preset}.yaml")) == \
            load_train_config("mobilespeech", preset)
