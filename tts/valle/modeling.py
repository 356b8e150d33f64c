"""VALL-E (Wang et al. 2023): an autoregressive model of the first codebook and a non-autoregressive model
of codebooks 2..K, both conditioned on phonemes and an acoustic prompt. Codec-agnostic: K and the codebook
size come from the shard manifest (Language-Codec MCRVQ K = 3..8, any RVQ, one 46,656-way FSQ stage with
the AR alone, residual FSQ stages with the NAR predicting stages 2..S).

AR: a causal transformer over `[phonemes, <eos>, c_1 of the prompt, c_1 of the target, EOS]` with separate
phoneme and acoustic embeddings and positions counted separately for text and audio (position ids restart
at 0 where audio starts). The backbone is transformers' `LlamaModel` driven by `inputs_embeds`: it brings
the KV cache (`DynamicCache`), padding masks and fused attention. It differs from the paper's vanilla
transformer in the usual Llama ways (RoPE instead of sinusoidal positions, RMSNorm, SwiGLU FFN of width
`intermediate_size`); dropout is applied to the input embeddings and inside attention (Llama has no
residual dropout). Trained on whole utterances: any prefix acts as the prompt (paper §4).

NAR: written here, because it needs the paper's adaptive layer norm `AdaLN(h, i) = a_i LN(h) + b_i` in
every block (stage i injected by norm, which no transformers block offers) and no cache. Input per item:
`[phonemes | sum of all K embeddings of the prompt | sum of embeddings 1..i-1 of the target]`, sinusoidal
positions (text, then prompt and target counted together), no causal mask. The token embeddings are read
at unit scale beside the unit sinusoid (`input_scale`, `tts.layers.ScaledEmbedding`; lifeiteng's N(0, 1)
embeddings do the same), else the NAR sees positions and barely its lower levels. A stage i in 2..K is
drawn per item (`nar_stage_per_item`; per batch in lifeiteng and Amphion); greedy decoding stage by stage
at inference. The prediction layer of codebook j reuses the weights of embedding j (`nar_tie_output`,
paper §4.2; lifeiteng ties layer j to embedding j + 1, leaving its last layer untied).

Training schedule (`forward`): `--stage both` trains AR and NAR together until the AR's running
teacher-forced top-1 reaches `ar_stop_top1`, then the NAR alone (`ar_stopped_at` records the update).

Shapes: codes LongTensor (B, K, F); phonemes LongTensor (B, P); lengths LongTensor (B,).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LlamaConfig, LlamaModel

from ..data import TTSBatch
from ..errors import TTSError
from ..generation import GenerationConfig, sample_next
from ..layers import ScaledEmbedding, sinusoidal
from ..model import TTSModel, TTSOutput
from .configuration import ValleConfig
from .decoding import StaticCacheDecoder

logger = logging.getLogger(__name__)

IGNORE = -100


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Share of labelled positions (labels != IGNORE) whose label is among the top-k logits."""
    valid = labels != IGNORE
    if not valid.any():
        return torch.zeros((), device=logits.device)
    top = logits[valid].topk(min(k, logits.shape[-1]), dim=-1).indices
    return (top == labels[valid][:, None]).any(-1).float().mean()


class AdaptiveLayerNorm(nn.Module):
    """LayerNorm whose gain and bias are chosen by the stage: a[stage] * LN(h) + b[stage]."""

    def __init__(self, dim: int, num_stages: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.gain = nn.Embedding(num_stages, dim)
        self.bias = nn.Embedding(num_stages, dim)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, h: torch.Tensor, stage: torch.Tensor) -> torch.Tensor:
        """h (B, L, D), stage LongTensor (B,)."""
        return self.gain(stage)[:, None] * self.norm(h) + self.bias(stage)[:, None]


class NARBlock(nn.Module):
    """Pre-norm transformer block (AdaLN, bidirectional self-attention, AdaLN, GELU FFN)."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float, num_stages: int):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1 = AdaptiveLayerNorm(dim, num_stages)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = AdaptiveLayerNorm(dim, num_stages)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, stage: torch.Tensor) -> torch.Tensor:
        """h (B, L, D); mask bool (B, L) True on real positions; stage (B,)."""
        B, L, D = h.shape
        q, k, v = self.qkv(self.norm1(h, stage)).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :],
                                           dropout_p=self.dropout if self.training else 0.0)
        h = h + self.drop(self.out(a.transpose(1, 2).reshape(B, L, D)))
        return h + self.drop(self.ffn(self.norm2(h, stage)))


class ValleAR(nn.Module):
    """The autoregressive model of codebook 1 (see the module docstring)."""

    def __init__(self, config: ValleConfig):
        super().__init__()
        d = config.hidden_size
        self.eos = config.audio_eos_id
        self.text_eos = 3  # data_prep.text.vocab.PhonemeVocab.eos_id
        self.text_embedding = nn.Embedding(config.phoneme_vocab_size, d)
        self.audio_embedding = nn.Embedding(config.codebook_size + 1, d)  # codes + EOS (also the pad input)
        self.dropout = nn.Dropout(config.dropout)
        self.backbone = LlamaModel(LlamaConfig(
            hidden_size=d, intermediate_size=config.intermediate_size, num_hidden_layers=config.num_hidden_layers,
            num_attention_heads=config.num_attention_heads, vocab_size=1, attention_dropout=config.dropout,
            rope_theta=config.rope_theta, max_position_embeddings=config.max_frames, bos_token_id=None,
            eos_token_id=None, pad_token_id=None))
        self.head = nn.Linear(d, config.codebook_size + 1)
        for emb in (self.text_embedding, self.audio_embedding):
            nn.init.normal_(emb.weight, std=0.02)  # Llama's initializer range

    def _prefix(self, phonemes: list[torch.Tensor], audio: list[torch.Tensor]) -> tuple[list, list]:
        """Per item: embeddings (P + 1 + A, D) of [phonemes, <eos>, audio] and position ids."""
        embs, positions = [], []
        for ph, au in zip(phonemes, audio):
            text = torch.cat([ph, ph.new_tensor([self.text_eos])])
            embs.append(torch.cat([self.text_embedding(text), self.audio_embedding(au)]))
            positions.append(torch.cat([torch.arange(len(text), device=ph.device),
                                        torch.arange(len(au), device=ph.device)]))
        return embs, positions

    def loss(self, batch: TTSBatch) -> tuple[torch.Tensor, dict]:
        """Teacher-forced cross-entropy over [prompt c_1, target c_1, EOS] of every item."""
        phonemes = [batch.phonemes[i, : int(n)] for i, n in enumerate(batch.phoneme_lengths)]
        audio = [torch.cat([batch.prompt[i, 0, : int(batch.prompt_lengths[i])],
                            batch.codes[i, 0, : int(batch.code_lengths[i])]]) for i in range(len(batch))]
        embs, positions = self._prefix(phonemes, audio)
        L = max(len(e) for e in embs)
        B, device = len(embs), batch.codes.device
        x = torch.zeros(B, L, embs[0].shape[-1], device=device, dtype=embs[0].dtype)
        pos = torch.zeros(B, L, dtype=torch.long, device=device)
        mask = torch.zeros(B, L, dtype=torch.long, device=device)
        labels = torch.full((B, L), IGNORE, dtype=torch.long, device=device)
        for i, (e, p, ph, au) in enumerate(zip(embs, positions, phonemes, audio)):
            x[i, : len(e)], pos[i, : len(e)], mask[i, : len(e)] = e, p, 1
            start = len(ph)  # the text <eos> predicts the first audio token
            labels[i, start : start + len(au) + 1] = torch.cat([au, au.new_tensor([self.eos])])
        h = self.backbone(inputs_embeds=self.dropout(x), attention_mask=mask, position_ids=pos).last_hidden_state
        logits = self.head(h)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE)
        return loss, {"ar/loss": float(loss.detach()), "ar/top10": float(topk_accuracy(logits.detach(), labels, 10)),
                      "ar/top1": float(topk_accuracy(logits.detach(), labels, 1))}

    @torch.no_grad()
    def generate(self, phonemes: list[torch.Tensor], prompts: list[torch.Tensor], max_frames: list[int],
                 cfg: GenerationConfig) -> list[torch.Tensor]:
        """Codebook-1 continuation of each prompt (A_i,) after its phonemes (P_i,), until EOS or max_frames[i].

        Items are left-padded into one batch; with `cfg.use_cache` each step feeds one token per item
        through a key/value cache (`cfg.static_cache`: preallocated and updated in place by
        `StaticCacheDecoder`, the fast path; else transformers' `DynamicCache`), without it the whole sequence
        is recomputed at every step (the reference the tests compare to).
        Returns LongTensor (F_i,) per item, without the prompt and without EOS.
        """
        device = self.audio_embedding.weight.device
        embs, positions = self._prefix(phonemes, prompts)
        B, L0, D = len(embs), max(len(e) for e in embs), embs[0].shape[-1]
        x = torch.zeros(B, L0, D, device=device, dtype=embs[0].dtype)
        pos = torch.zeros(B, L0, dtype=torch.long, device=device)
        mask = torch.zeros(B, L0, dtype=torch.long, device=device)
        for i, (e, p) in enumerate(zip(embs, positions)):
            x[i, L0 - len(e):], pos[i, L0 - len(e):], mask[i, L0 - len(e):] = e, p, 1
        next_pos = torch.tensor([len(p) for p in prompts], device=device)
        # one generator per item, all seeded alike: an item's tokens do not depend on its batch (as MobileSpeech)
        generator = [torch.Generator(device="cpu").manual_seed(cfg.seed) for _ in range(B)]
        out: list[list[int]] = [[] for _ in range(B)]
        history = [p.tolist() for p in prompts]
        done = [False] * B
        cache, step_x, step_pos, all_x, all_pos = None, x, pos, x, pos
        static = StaticCacheDecoder(self.backbone, B, L0 + max(max_frames) + 1) if (
            cfg.use_cache and cfg.static_cache) else None
        for t in range(max(max_frames) + 1):
            if static is not None:
                h = static.prefill(x, mask, pos) if t == 0 else static.step(step_x, step_pos)
            elif cfg.use_cache:
                o = self.backbone(inputs_embeds=step_x, attention_mask=mask, position_ids=step_pos, cache=cache,
                                  use_cache=True)
                cache, h = o.cache, o.last_hidden_state[:, -1]
            else:
                o = self.backbone(inputs_embeds=all_x, attention_mask=mask, position_ids=all_pos, use_cache=False)
                h = o.last_hidden_state[:, -1]
            logits = self.head(h).float().cpu()
            if t < cfg.min_frames:
                logits[:, self.eos] = float("-inf")
            tokens = sample_next(logits, cfg, history, generator)
            for i in range(B):
                if done[i]:
                    continue
                token = int(tokens[i])
                if token == self.eos or len(out[i]) >= max_frames[i]:
                    if token != self.eos:
                        logger.warning("item %d: no EOS within %d frames; stopped there", i, max_frames[i])
                    done[i] = True
                    continue
                out[i].append(token)
                history[i].append(token)
            if all(done):
                break
            feed = torch.tensor([o_[-1] if o_ and not d else self.eos for o_, d in zip(out, done)], device=device)
            step_x = self.audio_embedding(feed)[:, None]
            step_pos = next_pos[:, None].clone()
            next_pos = next_pos + 1
            if static is None:
                mask = torch.cat([mask, torch.ones(B, 1, dtype=mask.dtype, device=device)], dim=1)
            if not cfg.use_cache:
                all_x, all_pos = torch.cat([all_x, step_x], 1), torch.cat([all_pos, step_pos], 1)
        return [torch.tensor(o_, dtype=torch.long) for o_ in out]


class ValleNAR(nn.Module):
    """The non-autoregressive model of codebooks 2..K (see the module docstring)."""

    def __init__(self, config: ValleConfig):
        super().__init__()
        d, K = config.hidden_size, config.num_quantizers
        self.K, self.V, self.dim, self.tie = K, config.codebook_size, d, config.nar_tie_output
        # read at unit scale under the additive sinusoid, stored small for the tied output (tts.layers)
        self.text_embedding = ScaledEmbedding(config.phoneme_vocab_size, d, config.input_scale)
        self.audio_embeddings = nn.ModuleList(ScaledEmbedding(config.codebook_size, d, config.input_scale)
                                              for _ in range(K))
        self.blocks = nn.ModuleList(
            NARBlock(d, config.num_attention_heads, config.intermediate_size, config.dropout, K - 1)
            for _ in range(config.num_hidden_layers))
        self.norm = AdaptiveLayerNorm(d, K - 1)
        self.dropout = nn.Dropout(config.dropout)
        self.heads = None if self.tie else nn.ModuleList(nn.Linear(d, config.codebook_size) for _ in range(K - 1))

    def _embed_audio(self, codes: torch.Tensor, upto: int) -> torch.Tensor:
        """Sum of the embeddings of codebooks 0..upto-1 of codes (K, F) -> (F, D)."""
        return sum(self.audio_embeddings[k](codes[k]) for k in range(upto))

    def hidden(self, phonemes: list[torch.Tensor], prompts: list[torch.Tensor], targets: list[torch.Tensor],
               stages: list[int]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Hidden states (B, L, D) predicting codebook `stages[i]` (0-based, >= 1) of target i, the padding
        mask (B, L) and the offset of each item's target in the sequence."""
        seqs, offsets = [], []
        for ph, pr, tg, stage in zip(phonemes, prompts, targets, stages):
            dev = ph.device
            text = self.text_embedding(ph) + sinusoidal(torch.arange(len(ph), device=dev), self.dim)
            audio = torch.cat([self._embed_audio(pr, self.K) if pr.shape[-1] else pr.new_zeros(0, self.dim).float(),
                               self._embed_audio(tg, stage)])
            audio = audio + sinusoidal(torch.arange(len(audio), device=dev), self.dim)
            seqs.append(torch.cat([text, audio]))
            offsets.append(len(ph) + pr.shape[-1])
        B, L = len(seqs), max(len(s) for s in seqs)
        x = seqs[0].new_zeros(B, L, self.dim)
        mask = torch.zeros(B, L, dtype=torch.bool, device=x.device)
        for i, s in enumerate(seqs):
            x[i, : len(s)], mask[i, : len(s)] = s, True
        st = torch.tensor(stages, dtype=torch.long, device=x.device) - 1
        h = self.dropout(x)
        for block in self.blocks:
            h = block(h, mask, st)
        return self.norm(h, st), mask, offsets

    def logits(self, h: torch.Tensor, stage: int) -> torch.Tensor:
        if self.tie:
            return F.linear(h, self.audio_embeddings[stage].weight)
        return self.heads[stage - 1](h)

    def loss(self, batch: TTSBatch, stages: list[int]) -> tuple[torch.Tensor, dict]:
        """Cross-entropy of codebook `stages[i]` (0-based, >= 1) of item i, over all target frames of the batch;
        loss and top-1/top-10 per codebook trained."""
        n = len(batch)
        phonemes = [batch.phonemes[i, : int(batch.phoneme_lengths[i])] for i in range(n)]
        prompts = [batch.prompt[i, :, : int(batch.prompt_lengths[i])] for i in range(n)]
        targets = [batch.codes[i, :, : int(batch.code_lengths[i])] for i in range(n)]
        h, _, offsets = self.hidden(phonemes, prompts, targets, stages)
        total, count, metrics = h.new_zeros((), dtype=torch.float32), 0, {}
        for stage in sorted(set(stages)):
            rows = [i for i, s in enumerate(stages) if s == stage]
            hs = torch.cat([h[i, offsets[i] : offsets[i] + targets[i].shape[-1]] for i in rows])
            labels = torch.cat([targets[i][stage] for i in rows])
            logits = self.logits(hs, stage).float()
            ce = F.cross_entropy(logits, labels, reduction="sum")
            total, count = total + ce, count + len(labels)
            q = stage + 1
            metrics.update({f"nar/loss_q{q}": float(ce.detach()) / max(len(labels), 1),
                            f"nar/top10_q{q}": float(topk_accuracy(logits.detach(), labels, 10)),
                            f"nar/top1_q{q}": float(topk_accuracy(logits.detach(), labels, 1))})
        loss = total / max(count, 1)
        metrics["nar/loss"] = float(loss.detach())
        return loss, metrics

    @torch.no_grad()
    def generate(self, phonemes: list[torch.Tensor], prompts: list[torch.Tensor],
                 first: list[torch.Tensor]) -> list[torch.Tensor]:
        """Greedy codebooks 2..K for each item given its codebook-1 codes (F_i,) -> codes (K, F_i)."""
        codes = [f.new_zeros(self.K, len(f)) for f in first]
        for c, f in zip(codes, first):
            c[0] = f
        for stage in range(1, self.K):
            h, _, offsets = self.hidden(phonemes, prompts, codes, [stage] * len(codes))
            pred = self.logits(h, stage).argmax(-1)
            for i, (off, c) in enumerate(zip(offsets, codes)):
                c[stage] = pred[i, off : off + c.shape[-1]]
        return codes


class ValleModel(TTSModel):
    """VALL-E AR + NAR (`config.has_nar` False for K = 1). `stage`: "both", "ar" or "nar" is trained."""

    config_class = ValleConfig
    base_model_prefix = "valle"
    # the AR-stop record (`ar_stop_top1`) is training state: exports written before it load without it
    _keys_to_ignore_on_load_missing = [r"^ar_top1_mean$", r"^ar_stopped_at$", r"^num_updates$"]
    AR_TOP1_DECAY = 0.9  # running mean of the AR's batch top-1 over about ten steps

    def __init__(self, config: ValleConfig):
        super().__init__(config)
        self.ar = ValleAR(config)
        self.nar = ValleNAR(config) if config.has_nar else None
        self.train_stage = "both"
        # Training state kept in the model so that a resumed run makes the same decision (saved with it).
        # Under DDP the buffers are broadcast from the main process every step: all processes agree.
        self.register_buffer("ar_top1_mean", torch.zeros(()))
        self.register_buffer("ar_stopped_at", torch.zeros((), dtype=torch.long))  # 0: AR still trained
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self.post_init()

    def set_train_stage(self, stage: str) -> None:
        if stage not in ("both", "ar", "nar"):
            raise TTSError(f"--stage {stage!r} not one of both, ar, nar")
        if stage == "nar" and self.nar is None:
            raise TTSError("--stage nar: a codec with one codebook has no NAR stages to train")
        self.train_stage = stage

    @property
    def trains_ar(self) -> bool:
        """Whether this training step computes the AR loss: `--stage ar|both`, and with "both" not stopped
        by `ar_stop_top1` (a model without a NAR always trains its AR)."""
        if self.train_stage == "nar":
            return False
        return self.train_stage == "ar" or self.nar is None or int(self.ar_stopped_at) == 0

    def _track_ar(self, top1: float) -> None:
        """Running mean of the AR's teacher-forced top-1; stop its loss once it reaches `ar_stop_top1`."""
        d = self.AR_TOP1_DECAY
        self.ar_top1_mean.fill_(top1 if int(self.num_updates) == 1 else d * float(self.ar_top1_mean) + (1 - d) * top1)
        limit = self.config.ar_stop_top1
        if (self.train_stage == "both" and self.nar is not None and limit is not None
                and int(self.num_updates) >= 10 and float(self.ar_top1_mean) >= limit):
            self.ar_stopped_at.fill_(int(self.num_updates))
            logger.info("AR teacher-forced top-1 %.4f >= ar_stop_top1=%g at update %d: the AR's loss is dropped, "
                        "every later step trains the NAR", float(self.ar_top1_mean), limit, int(self.num_updates))

    def forward(self, batch: TTSBatch, stage: int | None = None) -> TTSOutput:
        """Training loss of the selected parts (mean of AR and NAR losses for "both"). NAR codebook: `stage`
        (0-based, >= 1) for every item, or drawn uniformly from 1..K-1 with torch's global generator, per
        item (`nar_stage_per_item`) or once for the batch."""
        losses, metrics = [], {}
        if self.training:
            self.num_updates += 1
        if self.train_stage != "nar" and (self.trains_ar or not self.training):
            loss, m = self.ar.loss(batch)
            losses.append(loss)
            metrics.update(m)
            if self.training:
                self._track_ar(m["ar/top1"])
        if self.train_stage in ("both", "nar") and self.nar is not None:
            K = self.config.num_quantizers
            if stage is not None:
                stages = [stage] * len(batch)
            elif self.config.nar_stage_per_item:
                stages = torch.randint(1, K, (len(batch),)).tolist()
            else:
                stages = [int(torch.randint(1, K, ()))] * len(batch)
            loss, m = self.nar.loss(batch, stages)
            losses.append(loss)
            metrics.update(m)
        total = sum(losses) / len(losses)
        metrics["loss"] = float(total.detach())
        if self.training and self.train_stage == "both" and self.nar is not None:
            metrics["ar/stopped"] = float(int(self.ar_stopped_at) > 0)
        return TTSOutput(loss=total, metrics=metrics)

    @torch.no_grad()
    def generate(self, phonemes: list[list[int] | torch.Tensor], prompts: list[torch.Tensor],
                 num_target_phonemes: list[int], config: GenerationConfig | None = None) -> list[torch.Tensor]:
        """Codes (K, F_i) of new speech for each item.

        phonemes: ids of the whole text per item (prompt transcript, then the text to say);
        prompts: prompt codes (K, Fp_i) per item (Fp_i >= 1); num_target_phonemes: phonemes of the text to
        say (bounds the length: `config.max_frames`). Batched: items of any lengths go through together.
        """
        cfg = config or GenerationConfig()
        device = self.ar.audio_embedding.weight.device
        phon = [torch.as_tensor(p, dtype=torch.long, device=device) for p in phonemes]
        prm = [torch.as_tensor(p, dtype=torch.long, device=device) for p in prompts]
        for i, p in enumerate(prm):
            if p.ndim != 2 or p.shape[0] != self.config.num_quantizers or p.shape[1] < 1:
                raise TTSError(f"prompt {i}: codes must be ({self.config.num_quantizers}, F>=1), got {tuple(p.shape)}")
        limits = []
        for i, (n, p) in enumerate(zip(num_target_phonemes, prm)):
            room = self.config.max_frames - p.shape[-1]
            if room < 1:
                raise TTSError(f"prompt {i} has {p.shape[-1]} frames ({p.shape[-1] / self.config.frame_rate:.1f} s), "
                               f"the model's context is {self.config.max_frames} frames")
            limits.append(min(room, cfg.max_frames(n, self.config.frame_rate)))
        was_training = self.training
        self.eval()
        try:
            first = [f.to(device) for f in self.ar.generate(phon, [p[0] for p in prm], limits, cfg)]
            if self.nar is None:
                return [f[None].cpu() for f in first]
            out = []
            nonempty = [i for i, f in enumerate(first) if len(f)]
            codes = self.nar.generate([phon[i] for i in nonempty], [prm[i] for i in nonempty],
                                      [first[i] for i in nonempty]) if nonempty else []
            by_index = dict(zip(nonempty, codes))
            for i, f in enumerate(first):
                out.append(by_index[i].cpu() if i in by_index else torch.zeros(self.config.num_quantizers, 0,
                                                                               dtype=torch.long))
            return out
        finally:
            self.train(was_training)
