"""MobileSpeech (Ji et al., ACL 2024): fully parallel zero-shot TTS over codec tokens.

    phonemes -> phoneme encoder (Conformer) -> duration predictor (+ the prompt's durations) -> length
    regulator -> Speech Mask Decoder (Conformer, cross-attention to the prompt encoder in every block)
    -> codes level by level (MaskGIT within a level, `decoding.py`)

- Phoneme encoder: phoneme embedding + sinusoidal positions + `encoder_layers` Conformer blocks over the
  whole phoneme sequence (prompt transcript, then the text to say).
- Aligner (`tts.alignment.AlignmentModule`): learned phoneme-to-frame log-likelihood over prompt + target
  frames, each frame read as the codec's latent (its codes' vectors from the codec, `for_codec`); MAS
  durations (no_grad) drive the length regulator in training; at synthesis it measures the prompt's
  durations (the paper's "duration extractor").
- Duration predictor: encoder states + (log(1 + d), known) of the prompt's phonemes -> `duration_layers`
  Conformer blocks -> log(1 + d) of every phoneme; MSE on the phonemes of the target. Not transformers'
  `FastSpeech2ConformerDurationPredictor`: its convolutions see a few neighbours only, so the prompt's
  pace could not reach the target's phonemes; attention lets it.
- Length regulator (`tts.alignment.length_regulate`): target phoneme states repeated per frame; at
  synthesis durations / speed are rounded so the total frame count is kept (`round_durations`).
- Prompt encoder: the sum of the embeddings of all K prompt codebooks + `prompt_encoder_layers` Conformer
  blocks; a learned null token is always appended to the memory (so an empty prompt cannot leave the
  cross-attention with nothing to attend to).
- SMD: per frame, length-regulated phoneme state + softmax-weighted sum of the K level embeddings (mask
  id where masked) + embedding of the level being predicted; `decoder_layers` Conformer blocks with
  cross-attention to the prompt; one output head per level. The SMD sees the target frames only; the
  prompt enters by cross-attention alone (the paper's figure shows the prompt tokens in front as well;
  cross-attention alone keeps the SMD's cost independent of the prompt length).

Training (`forward`): aligner loss (forward-sum) + duration loss + SMD cross-entropy of one regime per
example (`masking.py`). Codec-agnostic: K = 1..8 levels of any codebook size (one 46,656-way FSQ stage is
a single-level MaskGIT). Shapes: codes LongTensor (B, K, F); phonemes LongTensor (B, P); lengths (B,).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from tokenizer.utils.errors import CodecError, ConfigError
from tokenizer.utils.masking import length_mask

from ..alignment import (AlignmentModule, beta_binomial_prior, forward_sum_loss, hard_alignment,
                         length_regulate, prefix_alignment, round_durations)
from ..data import TTSBatch
from ..errors import TTSError
from ..generation import GenerationConfig
from ..layers import ScaledEmbedding
from ..model import TTSModel, TTSOutput
from .blocks import ConformerStack
from .configuration import MobileSpeechConfig
from .decoding import MaskDecodingConfig, decode_levels
from .masking import draw_regime, masked_inputs

logger = logging.getLogger(__name__)


def pad_stack(tensors: list[torch.Tensor], value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_i, ...) tensors -> (B, L_max, ...) right-padded with `value`, and lengths (B,)."""
    lengths = torch.tensor([len(t) for t in tensors], device=tensors[0].device)
    out = tensors[0].new_full((len(tensors), max(int(lengths.max()), 1), *tensors[0].shape[1:]), value)
    for i, t in enumerate(tensors):
        out[i, : len(t)] = t
    return out, lengths


class MobileSpeechModel(TTSModel):
    """MobileSpeech (see the module docstring)."""

    config_class = MobileSpeechConfig
    base_model_prefix = "mobilespeech"
    tts_generation_config_class = MaskDecodingConfig  # `synthesize --speed / --steps-per-level`

    def __init__(self, config: MobileSpeechConfig):
        super().__init__(config)
        c = config
        d, K, V = c.hidden_size, c.num_quantizers, c.codebook_size
        stack = dict(dim=d, heads=c.num_attention_heads, ffn=c.intermediate_size, kernel_size=c.conv_kernel_size,
                     dropout=c.dropout)
        # token embeddings at unit scale under the stacks' additive sinusoid (tts.layers.ScaledEmbedding)
        self.phoneme_embedding = ScaledEmbedding(c.phoneme_vocab_size, d, c.input_scale)
        self.encoder = ConformerStack(c.encoder_layers, **stack)
        if c.aligner_features == "codec" and not c.aligner_feature_dim:
            raise ConfigError("aligner_features='codec' needs aligner_feature_dim, the width of the codec's code "
                              "vectors: build the model with `MobileSpeechModel.for_codec(config, tokenizer)` (the "
                              "trainer does), or set aligner_features='codes'")
        self.aligner = AlignmentModule(c.phoneme_vocab_size, K, V, c.aligner_dim,
                                       c.aligner_feature_dim if c.aligner_features == "codec" else None)
        self.duration_in = nn.Linear(2, d)
        self.duration_predictor = ConformerStack(c.duration_layers, **stack)
        self.duration_out = nn.Linear(d, 1)
        self.code_embeddings = nn.ModuleList(ScaledEmbedding(V + 1, d, c.input_scale) for _ in range(K))  # + mask id
        self.prompt_encoder = ConformerStack(c.prompt_encoder_layers, **stack)
        self.null_memory = nn.Parameter(torch.zeros(1, 1, d))
        self.level_logits = nn.Parameter(torch.zeros(K))   # per-level weights of the SMD input (softmax)
        self.level_embedding = ScaledEmbedding(K, d, c.input_scale)
        self.decoder = ConformerStack(c.decoder_layers, cross_attention=True, **stack)
        self.heads = nn.ModuleList(nn.Linear(d, V) for _ in range(K))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))  # training forwards (prior)
        self.post_init()

    @classmethod
    def for_codec(cls, config: MobileSpeechConfig, tokenizer=None) -> "MobileSpeechModel":
        """A new model whose aligner reads frames through `tokenizer.code_vectors()` (config.aligner_features
        "codec"); a codec without such a table (CodecError) switches the config to "codes" with a warning."""
        table = None
        if config.aligner_features == "codec":
            try:
                table = tokenizer.code_vectors(config.num_quantizers) if tokenizer is not None else None
                why = "no codec given"
            except CodecError as exc:
                why = str(exc)
            if table is None:
                logger.warning("MobileSpeech's aligner learns code embeddings (aligner_features='codes'): %s", why)
                config.aligner_features, config.aligner_feature_dim = "codes", None
            else:
                config.aligner_feature_dim = int(table.shape[-1])
        model = cls(config)
        if table is not None:
            model.aligner.set_code_vectors(table)
        return model

    def set_train_stage(self, stage: str) -> None:
        if stage != "both":
            raise TTSError(f"--stage {stage!r}: MobileSpeech trains all its parts together (stage both)")

    # ------------------------------------------------------------------------------------ parts
    def encode_phonemes(self, phonemes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, P) ids -> (B, P, D)."""
        return self.encoder(self.phoneme_embedding(phonemes), mask)

    def predict_log_durations(self, states: torch.Tensor, mask: torch.Tensor, known: torch.Tensor,
                              durations: torch.Tensor) -> torch.Tensor:
        """log(1 + d) (B, P) of every phoneme from encoder states (B, P, D), given the durations (B, P) of
        the `known` (B, P) ones (the prompt's)."""
        cond = torch.stack([torch.log1p(durations.float()) * known, known.float()], dim=-1)
        h = self.duration_predictor(states + self.duration_in(cond), mask)
        return self.duration_out(h)[..., 0]

    def encode_prompt(self, prompt: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt codes (B, K, Fp) -> memory (B, 1 + Fp, D) (the null token first) and its mask (B, 1 + Fp)."""
        x = sum(emb(prompt[:, k]) for k, emb in enumerate(self.code_embeddings))
        mask = length_mask(lengths, prompt.shape[-1])
        h = self.prompt_encoder(x, mask)
        B = h.shape[0]
        memory = torch.cat([self.null_memory.expand(B, 1, -1).to(h.dtype), h], dim=1)
        return memory, torch.cat([mask.new_ones(B, 1), mask], dim=1)

    def decode_logits(self, frames: torch.Tensor, mask: torch.Tensor, tokens: torch.Tensor, levels: torch.Tensor,
                      memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        """SMD hidden states (B, F, D) from length-regulated phoneme states (B, F, D), input tokens
        (B, K, F) (mask id where masked) and the predicted level per item (B,)."""
        weights = self.level_logits.softmax(0) * len(self.code_embeddings)  # equal weights sum like a plain sum
        x = frames + sum(w * emb(tokens[:, k]) for k, (w, emb) in enumerate(zip(weights, self.code_embeddings)))
        x = x + self.level_embedding(levels)[:, None]
        return self.decoder(x, mask, memory, memory_mask)

    def align(self, phonemes, phoneme_lengths, codes, frame_lengths, prior: bool):
        """Aligner log-likelihood (B, P, T) of frames `codes` (B, K, T) given phonemes (B, P)."""
        pm = length_mask(phoneme_lengths, phonemes.shape[1])
        fm = length_mask(frame_lengths, codes.shape[-1])
        log_prior = (beta_binomial_prior(phoneme_lengths.tolist(), frame_lengths.tolist()).to(codes.device)
                     if prior else None)
        return self.aligner(phonemes, pm, codes, fm, log_prior)

    # ---------------------------------------------------------------------------------- training
    def forward(self, batch: TTSBatch, stage: int | None = None) -> TTSOutput:
        """Training loss: SMD cross-entropy of one regime per example + duration MSE + aligner forward-sum.
        `stage`: the level (0-based) to score for every example; in eval mode without `stage`, every level
        is scored with masks from a fixed seed (validation metrics per level)."""
        c, K = self.config, self.config.num_quantizers
        B, device = len(batch), batch.codes.device
        if self.training:
            self.num_updates += 1
        # whole utterances: prompt frames then target frames, aligned to all phonemes
        full = [torch.cat([batch.prompt[i, :, : int(batch.prompt_lengths[i])],
                           batch.codes[i, :, : int(batch.code_lengths[i])]], -1) for i in range(B)]
        full_codes, full_lengths = pad_stack([f.T for f in full])
        full_codes = full_codes.permute(0, 2, 1)  # (B, K, T)
        P, pl = batch.phonemes, batch.phoneme_lengths
        pm = length_mask(pl, P.shape[1])
        with_prior = self.training and int(self.num_updates) <= c.prior_steps
        ll = self.align(P, pl, full_codes, full_lengths, prior=with_prior)
        align_loss = forward_sum_loss(ll, pl, full_lengths)
        # The aligner's own fit, comparable across the prior's removal and with validation (which never uses
        # the prior): the logged align/loss jumps when the prior leaves the loss, this one does not.
        if with_prior:
            with torch.no_grad():
                no_prior = float(forward_sum_loss(self.align(P, pl, full_codes, full_lengths, prior=False), pl, full_lengths))
        else:
            no_prior = float(align_loss.detach())
        extra = {}
        if not self.training:  # validation: the same loss for a uniform likelihood, the bar an aligner must beat
            uniform = (-pl.float().log())[:, None, None].expand_as(ll) * pm[:, :, None]
            extra["align/loss_uniform"] = float(forward_sum_loss(uniform, pl, full_lengths))
        path = hard_alignment(ll.detach(), pl, full_lengths)  # (B, P, T)
        durations = path.sum(-1).long()
        frame_phoneme = path.argmax(1)  # (B, T) phoneme of each frame

        states = self.encode_phonemes(P, pm)
        known = (durations.cumsum(-1) <= batch.prompt_lengths[:, None]) & pm
        pred = self.predict_log_durations(states, pm, known, durations)
        scored = pm & ~known
        dur_loss = F.mse_loss(pred.float(), torch.log1p(durations.float()), reduction="none")
        dur_loss = (dur_loss * scored).sum() / scored.sum().clamp(min=1)

        # length regulation by the alignment: the target's frames take their phoneme's state
        F_max = int(batch.code_lengths.max())
        frames = torch.zeros(B, F_max, states.shape[-1], device=device, dtype=states.dtype)
        for i in range(B):
            fp, f = int(batch.prompt_lengths[i]), int(batch.code_lengths[i])
            frames[i, :f] = states[i, frame_phoneme[i, fp : fp + f]]
        fmask = length_mask(batch.code_lengths, F_max)
        memory, memory_mask = self.encode_prompt(batch.prompt, batch.prompt_lengths)

        if self.training or stage is not None:
            smd_loss, metrics = self._smd_loss(batch, frames, fmask, memory, memory_mask, stage, None)
        else:  # validation: every level, fixed masks
            gen = torch.Generator().manual_seed(0)
            parts = [self._smd_loss(batch, frames, fmask, memory, memory_mask, q, gen) for q in range(K)]
            smd_loss = sum(p[0] for p in parts) / K
            metrics = {k: v for p in parts for k, v in p[1].items()}
            metrics["smd/acc"] = sum(p[1]["smd/acc"] for p in parts) / K
        total = smd_loss + c.duration_loss_weight * dur_loss + c.align_loss_weight * align_loss
        metrics.update({"loss": float(total.detach()), "smd/loss": float(smd_loss.detach()),
                        "duration/loss": float(dur_loss.detach()), "align/loss": float(align_loss.detach()),
                        "align/loss_no_prior": no_prior, **extra})
        return TTSOutput(loss=total, metrics=metrics)

    def _smd_loss(self, batch, frames, fmask, memory, memory_mask, level, generator):
        c, K = self.config, self.config.num_quantizers
        B, F_max = frames.shape[:2]
        codes = batch.codes[:, :, :F_max]
        regimes = [draw_regime(int(batch.code_lengths[i]), K, c.first_level_prob, c.full_mask_prob, generator, level)
                   for i in range(B)]
        tokens = torch.full_like(codes, c.mask_id)
        scored = torch.zeros(B, F_max, dtype=torch.bool, device=codes.device)
        for i, r in enumerate(regimes):
            f = int(batch.code_lengths[i])
            tokens[i, :, :f] = masked_inputs(codes[i, :, :f], r, c.mask_id)
            scored[i, :f] = r.mask.to(scored.device)
        levels = torch.tensor([r.level for r in regimes], device=codes.device)
        h = self.decode_logits(frames, fmask, tokens, levels, memory, memory_mask)
        weights = c.level_loss_weights or [1.0] * K
        loss_sum, count, metrics = h.new_zeros(()), 0, {}
        for q in sorted(set(levels.tolist())):
            rows = (levels == q).nonzero()[:, 0]
            sel = scored[rows]
            logits = self.heads[q](h[rows][sel]).float()
            labels = codes[rows, q][sel]
            ce = F.cross_entropy(logits, labels, reduction="sum")
            loss_sum = loss_sum + weights[q] * ce
            count += len(labels)
            metrics[f"smd/loss_q{q + 1}"] = float(ce.detach()) / max(len(labels), 1)
            metrics[f"smd/acc_q{q + 1}"] = float((logits.argmax(-1) == labels).float().mean()) if len(labels) else 0.0
        metrics["smd/acc"] = sum(metrics[f"smd/acc_q{q + 1}"] * int((levels == q).sum())
                                 for q in set(levels.tolist())) / B
        return loss_sum / max(count, 1), metrics

    # --------------------------------------------------------------------------------- synthesis
    @torch.no_grad()
    def prompt_durations(self, phonemes: torch.Tensor, prompt: torch.Tensor,
                         num_target: int) -> tuple[torch.Tensor, int]:
        """(durations (Pk,) of the phonemes the prompt covers, Pk) for one item: the aligner over the prompt
        transcript (phonemes[:P - num_target]) or, when the text is the whole transcript (continuation),
        over the prefix of the phonemes that the prompt's frames reach."""
        P = len(phonemes)
        n_known = P - num_target
        cover = phonemes[:n_known] if n_known > 0 else phonemes
        ll = self.align(cover[None], torch.tensor([len(cover)], device=cover.device), prompt[None],
                        torch.tensor([prompt.shape[-1]], device=cover.device), prior=False)[0]
        if n_known > 0:
            lengths = (torch.tensor([len(cover)], device=ll.device), torch.tensor([prompt.shape[-1]], device=ll.device))
            return hard_alignment(ll[None], *lengths)[0].sum(-1).long(), n_known
        d = prefix_alignment(ll)
        reached = int((d > 0).nonzero().max()) + 1
        return d[:reached], reached

    @torch.no_grad()
    def frame_phonemes(self, phonemes: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """The aligner's phoneme index (T,) of every frame of an utterance: phonemes (P,), codes (K, T) (the
        monotonic path training regulates length with)."""
        P, T = torch.tensor([len(phonemes)]), torch.tensor([codes.shape[-1]])
        ll = self.align(phonemes[None], P, codes[None], T, prior=False)
        return hard_alignment(ll, P, T)[0].argmax(0)

    @torch.no_grad()
    def frames_available(self, prompt_frames: int) -> int:
        """The prompt is encoded on its own (`encode_prompt`): the generated frames have the whole context."""
        return int(self.config.max_frames)

    def generate(self, phonemes: list, prompts: list[torch.Tensor], num_target_phonemes: list[int],
                 config: GenerationConfig | None = None,
                 frame_phonemes: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Codes (K, F_i) of new speech per item (the prompt not repeated), batched.

        phonemes: ids of the whole text per item (prompt transcript, then the text to say); prompts: codes
        (K, Fp_i), Fp_i >= 1; num_target_phonemes: phonemes of the text to say (all of them in continuation
        mode: the prompt then covers a prefix, found by the aligner). `config`: a `MaskDecodingConfig` (speed,
        steps per level) or any `GenerationConfig` (greedy/sampling, temperature, seed, length cap).
        `frame_phonemes` (oracle length regulation, for evaluation): the phoneme index of every frame to
        generate (F_i,) per item, e.g. `frame_phonemes(...)[Fp:]` of a real utterance; the durations are then
        not predicted and the output has exactly those frames.
        """
        cfg = config or GenerationConfig()
        c, K = self.config, self.config.num_quantizers
        device = self.heads[0].weight.device
        phon = [torch.as_tensor(p, dtype=torch.long, device=device) for p in phonemes]
        prm = [torch.as_tensor(p, dtype=torch.long, device=device) for p in prompts]
        for i, p in enumerate(prm):
            if p.ndim != 2 or p.shape[0] != K or p.shape[1] < 1:
                raise TTSError(f"prompt {i}: codes must be ({K}, F>=1), got {tuple(p.shape)}")
            if not 0 < num_target_phonemes[i] <= len(phon[i]):
                raise TTSError(f"item {i}: {num_target_phonemes[i]} target phonemes of {len(phon[i])}")
        speed = float(getattr(cfg, "speed", 1.0))
        steps = c.level_steps(getattr(cfg, "steps_per_level", None))
        was_training = self.training
        self.eval()
        try:
            known_d, n_known = zip(*(self.prompt_durations(ph, pr, n)
                                     for ph, pr, n in zip(phon, prm, num_target_phonemes)))
            P, pl = pad_stack(phon)
            pm = length_mask(pl, P.shape[1])
            states = self.encode_phonemes(P, pm)
            known = torch.zeros_like(pm)
            durations = torch.zeros(P.shape, dtype=torch.long, device=device)
            for i, (d, n) in enumerate(zip(known_d, n_known)):
                known[i, :n], durations[i, :n] = True, d.to(device)
            log_d = self.predict_log_durations(states, pm, known, durations).float()
            frames, lengths = [], []
            for i, n in enumerate(n_known):
                if frame_phonemes is not None:
                    index = torch.as_tensor(frame_phonemes[i], dtype=torch.long, device=device)
                    frames.append(states[i, index])
                    lengths.append(len(index))
                    continue
                target = (torch.expm1(log_d[i, n : int(pl[i])]).clamp(min=0) / speed).cpu()
                cap = min(c.max_frames, cfg.max_frames(int(pl[i]) - n, c.frame_rate))
                if target.sum() > cap:
                    logger.warning("item %d: %.0f predicted frames cut to %d", i, float(target.sum()), cap)
                    target = target * (cap / float(target.sum()))
                d = round_durations(target)
                if int(d.sum()) == 0 and len(d):
                    d[-1] = 1  # at least one frame for a non-empty text
                frames.append(length_regulate(states[i, n : int(pl[i])], d.to(device)))
                lengths.append(int(d.sum()))
            if max(lengths, default=0) == 0:
                return [torch.zeros(K, 0, dtype=torch.long) for _ in lengths]
            frame_states, fl = pad_stack([f if len(f) else states.new_zeros(0, states.shape[-1]) for f in frames])
            fmask = length_mask(fl, frame_states.shape[1])
            prompt, prompt_lengths = pad_stack([p.T for p in prm])
            memory, memory_mask = self.encode_prompt(prompt.permute(0, 2, 1), prompt_lengths)

            def logits_fn(tokens: torch.Tensor, level: int) -> torch.Tensor:
                levels = torch.full((len(lengths),), level, dtype=torch.long, device=device)
                h = self.decode_logits(frame_states, fmask, tokens, levels, memory, memory_mask)
                return self.heads[level](h)

            tokens = decode_levels(logits_fn, lengths, K, steps, c.mask_id, cfg, c.choice_temperature, device)
            return [tokens[i, :, :n].cpu() for i, n in enumerate(lengths)]
        finally:
            self.train(was_training)
