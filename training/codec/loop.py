"""The codec training loop on `accelerate`, readable top to bottom in `train()`.

One optimizer step = `grad_accum_steps` micro-batches. For each micro-batch: the generator (codec)
reconstructs the crops; the discriminators' hinge loss on the real and detached generated audio is
backpropagated (one forward over both halves); then the generator's loss is backpropagated, its
adversarial terms computed through the discriminators with their weights frozen (so both players see the
discriminators as they were at the start of the step, and the real-audio features of the first pass serve
feature matching). After the last micro-batch both optimizers step (gradients clipped). Before
`disc_start_step` the discriminators are neither used nor trained.

Objectives: "reconstruction": loss = sum of weighted reconstruction terms + weighted commitment loss
(+ adversarial and feature-matching terms). "rate_distortion": loss = rate + lambda_rd x distortion
(+ weighted commitment), where distortion is everything above but the commitment term and rate is the
model output's `rate_loss`, in bits per audio sample (so rate x sampling_rate is bits per second, logged
as `rate/bps_est`: the training-mode estimate, noise relaxation included); a model whose output's
`rate_loss` is None is refused. lambda follows `lambda_at` (optional geometric warm-up from a higher
lambda). Evaluation logs what streams would cost (`eval/bps_coded`, hard rounding and the coding tables)
and warns when a model has collapsed (`collapse_reason`, `eval/collapsed`).

Reproducibility and resume: the learning rate is a pure function of the step, crops are drawn from
(seed, step, micro-batch, rank), and torch's global generator is re-seeded from (seed, step) at every step
(identically on every rank, so random choices inside the model such as quantizer dropout agree across
processes). A run resumed from `<out>/state/step-N` therefore continues exactly like an uninterrupted one.
`log.jsonl` is appended to; a resumed run first drops the rows of the steps after its state, which it
repeats (`training.run.trim_log`), so each step has one row.
The state directory is written by `accelerate.save_state`: weights as safetensors, optimizer, scaler and
RNG states as torch files that `load_state` reads with `weights_only=True`. Resume only from states you
wrote. Exported models (`<out>/export/step-N`, `<out>/final`) are `save_pretrained` directories.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from accelerate import Accelerator, DistributedDataParallelKwargs
from safetensors import safe_open

from data_prep.corpora import Utterance
from evaluation import metrics
from evaluation.collapse import collapse_reason, symbols_changed
from tokenizer.auto import AutoCodecConfig, AutoCodecTokenizer
from tokenizer.utils.errors import ConfigError
from tokenizer.registry import get_codec_spec

from ..checkpointing import due, resolve_resume, save_state
from ..run import TrainResult, begin_run, past_deadline
from ..schedule import lr_scale
from ..tracking import append_jsonl
from .config import ModelConfig, TrainConfig
from .data import CodecData, StepBatches
from .discriminators import Discriminators
from .losses import (MelSpectrogram, ReconstructionLoss, discriminator_hinge_loss, feature_matching_loss,
                     generator_hinge_loss, rate_distortion_loss)

logger = logging.getLogger(__name__)


def build_model(cfg: ModelConfig, seed: int) -> nn.Module:
    """A registry codec from preset + overrides (seeded init), or the model of a save_pretrained directory."""
    if cfg.init_from:
        return AutoCodecTokenizer.from_pretrained(cfg.init_from).model
    config = AutoCodecConfig.for_model(cfg.codec, preset=cfg.preset, **cfg.overrides)
    torch.manual_seed(seed)
    return get_codec_spec(config.model_type).model_class(config)


def freeze_modules(model: nn.Module, names: list) -> list[nn.Module]:
    """Fix the named top-level submodules (`ModelConfig.freeze`): no gradients, eval mode. Returns them, for
    `training_mode`. An unknown name is a `ConfigError` listing the model's submodules."""
    children = dict(model.named_children())
    frozen = []
    for name in names:
        if name not in children:
            raise ConfigError(f"model.freeze: {name!r} is not a submodule of {type(model).__name__} "
                              f"(its submodules: {', '.join(children)})")
        frozen.append(children[name].requires_grad_(False).eval())
    if frozen:
        trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
        if trained == 0:
            raise ConfigError(f"model.freeze={list(names)} leaves no parameter of {type(model).__name__} to train")
        logger.info("model.freeze=%s: training %d of %d parameters", list(names), trained,
                    sum(p.numel() for p in model.parameters()))
    return frozen


def record_same_tokens(model: nn.Module, frozen: list) -> None:
    """Keep `config.same_tokens_as` true (`tokenizer.identity`). With all of the model's `token_modules` frozen
    (`frozen`: the names of `ModelConfig.freeze`), the export makes exactly the starting checkpoint's tokens:
    add the start's weights digest, so shards and TTS models recorded with the start accept the new decoder.
    Otherwise the tokens will move: drop the lineage inherited from `init_from` (a fine-tuned encoder or
    quantizer makes other codes, and must not pass as its start against records without a tokens digest)."""
    token_modules = getattr(model, "token_modules", None) or [name for name, _ in model.named_children()]
    same = list(getattr(model.config, "same_tokens_as", None) or [])
    if not set(token_modules) <= set(frozen):
        if same:
            logger.info("model.freeze=%s leaves %s training: same_tokens_as %s dropped (other tokens)",
                        list(frozen), ", ".join(sorted(set(token_modules) - set(frozen))), same)
        model.config.same_tokens_as = []
        return
    digest = model.weights_digest()
    model.config.same_tokens_as = same if digest in same else [*same, digest]
    logger.info("encoder and quantizer frozen: the export makes the tokens of weights digest %s", digest)


def training_mode(model: nn.Module, frozen: list[nn.Module]) -> None:
    """`model.train()` except for the frozen submodules, which stay in eval mode (a frozen quantizer must
    not move its EMA codebooks or reset dead codes)."""
    model.train()
    for module in frozen:
        module.eval()


def resolve_lambda(cfg: TrainConfig, model: nn.Module) -> float | None:
    """The rate-distortion weight of a `rate_distortion` run: `cfg.lambda_rd`, else the model config's
    `rd_lambda`. An explicit value is written into the model config (the bitstream header and the exported
    config then name the lambda the weights were trained for)."""
    if cfg.objective != "rate_distortion":
        return None
    own = getattr(model.config, "rd_lambda", None)
    if cfg.lambda_rd is None:
        if own is None:
            raise ConfigError("objective=rate_distortion: set lambda_rd (the model config has no rd_lambda)")
        return float(own)
    if own is not None and float(own) != cfg.lambda_rd:
        logger.info("lambda_rd=%g replaces the model config's rd_lambda=%g", cfg.lambda_rd, own)
        model.config.rd_lambda = cfg.lambda_rd
    return cfg.lambda_rd


def check_disc_state(state: Path, disc: nn.Module) -> None:
    """Refuse, with the fix, to resume a state whose discriminators differ from the configured ones (a run
    started before the multi-scale discriminator existed has no `parts.msd` weights)."""
    path = state / "model_1.safetensors"  # accelerate's file of the second prepared model
    if not path.is_file():
        return
    with safe_open(str(path), "pt") as f:
        saved = {k.split(".")[1] for k in f.keys() if k.startswith("parts.")}
    wanted = set(disc.parts)
    if saved != wanted:
        raise ConfigError(f"resume: {state} has discriminators {sorted(saved)} but the config enables "
                          f"{sorted(wanted)}; resume with the saved set (e.g. --disc.msd=false for a run started "
                          "before the multi-scale discriminator) or start a new run")


def lambda_at(step: int, cfg: TrainConfig, lambda_rd: float) -> float:
    """The rate-distortion weight at `step` (0-based): geometric from max(lambda_warmup_start, lambda_rd)
    down to `lambda_rd` over the first `lambda_warmup_steps` steps, then `lambda_rd`."""
    if step >= cfg.lambda_warmup_steps:
        return lambda_rd
    start = max(float(cfg.lambda_warmup_start), lambda_rd)
    return start * (lambda_rd / start) ** (step / cfg.lambda_warmup_steps)


def optimizer_groups(model: nn.Module, entropy_lr_mult: float) -> list[dict]:
    """AdamW parameter groups, each with an `lr_mult` on the scheduled learning rate: "model" (x1) and,
    for models with `density_parameters()`, "entropy" (x `entropy_lr_mult`, see `OptimConfig`).
    Frozen parameters (requires_grad False, see `ModelConfig.freeze`) are left out."""
    density = [p for p in model.density_parameters() if p.requires_grad] if callable(
        getattr(model, "density_parameters", None)) else []
    ids = {id(p) for p in density}
    groups = [{"params": [p for p in model.parameters() if p.requires_grad and id(p) not in ids], "name": "model",
               "lr_mult": 1.0}]
    if density:
        groups.append({"params": list(density), "name": "entropy", "lr_mult": float(entropy_lr_mult)})
    return groups


def empirical_entropy_bits(symbols: list[torch.Tensor]) -> float:
    """Sum over channels of each channel's empirical entropy (bits per symbol) over every frame of every
    item; `symbols`: int tensors (C, F_i) with the same C."""
    flat = torch.cat([s.reshape(s.shape[0], -1).cpu() for s in symbols], dim=1)
    total = 0.0
    for row in flat:
        _, counts = torch.unique(row, return_counts=True)
        p = counts.double() / counts.sum()
        total += float(-(p * torch.log2(p)).sum())
    return total


def match_length(audio: torch.Tensor, length: int) -> torch.Tensor:
    """Trim or zero-pad (B, 1, T') to T = `length` samples (decoders emit whole frames)."""
    if audio.shape[-1] >= length:
        return audio[..., :length]
    return torch.nn.functional.pad(audio, (0, length - audio.shape[-1]))


def audio_metrics(reference: np.ndarray, estimate: np.ndarray, sampling_rate: int) -> dict:
    """Held-out metrics of one clip (1-D arrays), computed by the same functions as `evaluate-codec`'s
    reports: `mel_distance` (Stable Codec appendix D) and `stoi` (NaN where STOI is undefined)."""
    return {"mel_distance": metrics.mel_distance(reference, estimate, sampling_rate),
            "stoi": metrics.stoi(reference, estimate, sampling_rate)}


def spectrogram_image(reference: torch.Tensor, estimate: torch.Tensor) -> np.ndarray:
    """Two log-mel spectrograms (n_mels, frames), reference above estimate, as an RGB uint8 image (H, W, 3)
    with a viridis-like colour map (numpy only: no plotting dependency)."""
    lo, hi = float(reference.min()), float(reference.max())
    gap = np.ones((2, reference.shape[1]))
    stacked = np.concatenate([np.flipud(reference.numpy()), gap * hi, np.flipud(estimate.numpy())])
    v = np.clip((stacked - lo) / max(hi - lo, 1e-6), 0, 1)
    anchors = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=float)
    xs = np.linspace(0, 1, len(anchors))
    return np.stack([np.interp(v, xs, anchors[:, c]) for c in range(3)], axis=-1).astype(np.uint8)


@torch.no_grad()
def evaluate(model: nn.Module, clips: list, sampling_rate: int, device):
    """Reconstruct each held-out clip alone in eval mode -> (mean metrics, [(id, ref, est)]).

    Metrics: `mel_distance`, `stoi`, `mel_distance_no_input` (the reconstruction of silence of the same
    length against the clip: a collapsed model scores the same on both). Models with `coded_bits`
    (entropy-coded) add the rates their streams would have, hard-rounded and priced by the coding tables:
    `bps_coded`, `bps_y_coded`, `bps_z_coded`; `code_entropy_bps`, the empirical entropy of their y and z
    symbols over all clips (per channel) per second; `symbols_changed`, the share of y and z symbols that
    differ from those the model sends for silence of the same length (0: the stream ignores the input).
    Every submodule is left in the mode it was found in."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    samples, values = [], defaultdict(list)
    coded = callable(getattr(model, "coded_bits", None))
    symbols, seconds = defaultdict(list), 0.0
    for clip_id, clip in clips:
        x = torch.from_numpy(clip)[None, None].to(device)
        output = model(x)
        y = match_length(output.audio.float(), x.shape[-1])[0, 0].cpu().numpy()
        for k, v in audio_metrics(clip, y, sampling_rate).items():
            values[k].append(v)
        silent = match_length(model(torch.zeros_like(x)).audio.float(), x.shape[-1])[0, 0].cpu().numpy()
        values["mel_distance_no_input"].append(metrics.mel_distance(clip, silent, sampling_rate))
        if coded:
            bits = model.coded_bits(x)
            per_second = sampling_rate / x.shape[-1]
            values["bps_y_coded"].append(float(bits["bits_y"].sum()) * per_second)
            values["bps_z_coded"].append(float(bits["bits_z"].sum()) * per_second)
            values["bps_coded"].append(values["bps_y_coded"][-1] + values["bps_z_coded"][-1])
            silence = model.coded_bits(torch.zeros_like(x))
            values["symbols_changed"].append(symbols_changed(
                (bits[p].cpu().numpy(), silence[p].cpu().numpy()) for p in ("y_symbols", "z_symbols")))
            for part in ("y_symbols", "z_symbols"):
                symbols[part].append(bits[part][0])
            seconds += x.shape[-1] / sampling_rate
        samples.append((clip_id, clip, y))
    for m, mode in modes:
        m.training = mode
    scores = {k: float(np.nanmean(v)) if not all(np.isnan(v)) else float("nan") for k, v in values.items()}
    if symbols:
        scores["code_entropy_bps"] = sum(empirical_entropy_bits(v) * sum(s.shape[-1] for s in v)
                                         for v in symbols.values()) / seconds
    return scores, samples


def train(cfg: TrainConfig, utterances: Iterable[Utterance], model: nn.Module | None = None) -> TrainResult:
    """Run (or resume) training as configured on `utterances` (the corpus the CLI lists, see
    `training.codec.cli.list_utterances`). `model`: train this module instead of building one from
    `cfg.model` (it must follow the generator contract: `model(audio (B, 1, T), lengths=None)` -> a
    `tokenizer.model_outputs.CodecModelOutput`, and have `config.sampling_rate`)."""
    out = Path(cfg.out_dir)
    precision = cfg.mixed_precision
    if precision != "no" and not torch.cuda.is_available():
        logger.warning("mixed_precision=%s needs a GPU here; training in float32", precision)
        precision = "no"
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(), mixed_precision=precision, project_dir=str(out),
        log_with=None if cfg.log_with in (None, "none") else cfg.log_with,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=cfg.find_unused_parameters)],
    )
    main, rank, device = accelerator.is_main_process, accelerator.process_index, accelerator.device

    # ---- model, data, losses, discriminators, optimizers
    model = model if model is not None else build_model(cfg.model, cfg.seed)
    frozen = freeze_modules(model, cfg.model.freeze)
    if hasattr(model, "weights_digest"):  # a codec model (a custom generator may have no identity)
        record_same_tokens(model, cfg.model.freeze)
    sr = int(model.config.sampling_rate)
    lambda_rd = resolve_lambda(cfg, model)
    data = CodecData(utterances, cfg.data, sr, cfg.seed, show_progress=main)
    if data.segment < getattr(model, "min_input_samples", 1):
        raise ConfigError(f"data.segment_seconds={cfg.data.segment_seconds} gives {data.segment} samples, fewer "
                          f"than the model's minimum input of {model.min_input_samples}")
    recon = ReconstructionLoss(cfg.loss, sr).to(device)
    eval_mel = MelSpectrogram(sr, cfg.loss.mel_n_fft, cfg.loss.mel_hop_length, cfg.loss.mel_n_mels)
    use_disc = cfg.disc.any and (cfg.loss.adversarial > 0 or cfg.loss.feature_matching > 0)
    torch.manual_seed(cfg.seed + 1)
    disc = Discriminators(cfg.disc) if use_disc else None
    o = cfg.optim
    opt_g = torch.optim.AdamW(optimizer_groups(model, o.entropy_lr_mult), lr=o.lr, betas=tuple(o.betas),
                              weight_decay=o.weight_decay)
    if disc is not None:
        opt_d = torch.optim.AdamW(disc.parameters(), lr=o.disc_lr or o.lr, betas=tuple(o.betas),
                                  weight_decay=o.weight_decay)
        model, opt_g, disc, opt_d = accelerator.prepare(model, opt_g, disc, opt_d)
        disc_core = accelerator.unwrap_model(disc)
    else:
        model, opt_g = accelerator.prepare(model, opt_g)
    training_mode(model, frozen)

    # ---- resume, config.yaml, trackers
    if disc is not None and cfg.resume:
        check_disc_state(resolve_resume(out, cfg.resume), disc_core)
    run = begin_run(accelerator, cfg, "codec")
    start, end, writer = run.start, run.end, run.writer

    accum = o.grad_accum_steps
    loader = DataLoader(StepBatches(data, accum, rank, cfg.steps), batch_size=None,
                        sampler=range(start * accum, end * accum), num_workers=cfg.data.num_workers)
    batches = iter(loader)
    history, logs, t0 = [], {}, time.time()
    t_log, last_logged = t0, start
    export_dir = state_dir = None
    originals_logged = False
    bar = tqdm(range(start, end), initial=start, total=end, disable=not main, desc="train", dynamic_ncols=True)

    # ---- the loop
    deadline = t0 + cfg.max_minutes * 60 if cfg.max_minutes else None
    for step in bar:
        torch.manual_seed(cfg.seed * 1_000_003 + step)
        scale = lr_scale(step, cfg.steps, o.warmup_steps, o.schedule, o.min_lr_ratio, o.gamma)
        for group in opt_g.param_groups:
            group["lr"] = o.lr * scale * group["lr_mult"]
        lam = lambda_at(step, cfg, lambda_rd) if lambda_rd is not None else None
        gan = disc is not None and step >= cfg.disc_start_step
        if gan:
            for group in opt_d.param_groups:
                group["lr"] = (o.disc_lr or o.lr) * scale
        values = defaultdict(float)
        for micro in range(accum):
            audio, lengths = (t.to(device) for t in next(batches))
            with contextlib.ExitStack() as stack:
                if micro < accum - 1:  # gradients are all-reduced only on the last micro-batch
                    for m in (model, disc) if gan else (model,):
                        stack.enter_context(accelerator.no_sync(m))
                stack.enter_context(accelerator.autocast())
                output = model(audio, lengths=None if bool((lengths == audio.shape[-1]).all()) else lengths)
                fake = match_length(output.audio, audio.shape[-1])
                distortion, terms = recon(fake, audio, step)
                if gan:  # discriminator pass first; its real-audio features serve feature matching below
                    logits, feats = disc(torch.cat([audio, fake.detach()]))
                    real_logits, fake_logits = zip(*(lg.chunk(2) for lg in logits))
                    groups, reduction = disc_core.groups, cfg.loss.gan_reduction
                    terms["discriminator"] = discriminator_hinge_loss(list(real_logits), list(fake_logits), groups,
                                                                      reduction)
                    accelerator.backward(terms["discriminator"] / accum)
                    real_feats = [[f.chunk(2)[0].detach() for f in fs] for fs in feats]
                    disc_core.requires_grad_(False)  # the generator pass must not touch D's gradients
                    fake_logits, fake_feats = disc_core(fake)
                    disc_core.requires_grad_(True)
                    terms["adversarial"] = generator_hinge_loss(fake_logits, groups, reduction)
                    terms["feature_matching"] = feature_matching_loss(
                        real_feats, fake_feats, cfg.loss.feature_matching_normalized, groups, reduction)
                    distortion = (distortion + cfg.loss.adversarial * terms["adversarial"]
                                  + cfg.loss.feature_matching * terms["feature_matching"])
                terms["commit"] = torch.as_tensor(output.commit_loss, device=device, dtype=torch.float32)
                loss = distortion + cfg.loss.commit * terms["commit"]
                if cfg.objective == "rate_distortion":
                    if output.rate_loss is None:
                        raise ConfigError("objective=rate_distortion needs a model whose output has rate_loss")
                    terms["rate"] = output.rate_loss
                    loss = (rate_distortion_loss(output.rate_loss, distortion, lam)
                            + cfg.loss.commit * terms["commit"])
                accelerator.backward(loss / accum)
            values["loss/total"] += float(loss.detach()) / accum
            for k, v in terms.items():
                values[f"loss/{k}"] += float(torch.as_tensor(v).detach()) / accum
        clip = o.grad_clip if o.grad_clip > 0 else float("inf")
        values["grad_norm/generator"] = float(accelerator.clip_grad_norm_(model.parameters(), clip))
        opt_g.step()
        opt_g.zero_grad(set_to_none=True)
        if gan:
            values["grad_norm/discriminator"] = float(accelerator.clip_grad_norm_(disc.parameters(), clip))
            opt_d.step()
            opt_d.zero_grad(set_to_none=True)
        done = step + 1
        if done < end and past_deadline(accelerator, deadline):
            logger.info("max_minutes=%g reached at step %d: saving and exporting", cfg.max_minutes, done)
            end = done
        out_of_time = deadline is not None and done == end < cfg.steps

        # ---- logging, evaluation, checkpoints
        if due(done, cfg.log_every, end):
            values["lr"] = o.lr * scale
            values.update({f"lr/{g['name']}": g["lr"] for g in opt_g.param_groups if g["name"] != "model"})
            now = time.time()
            values["time/seconds_per_step"] = (now - t_log) / (done - last_logged)
            t_log, last_logged = now, done
            # Rates in training mode are the noise-relaxation estimates the loss uses ("_est"): an element the
            # coder sends for ~0 bits still counts ~0.15 bits there. Coded rates: eval/bps_coded.
            values.update({f"rate/{k}_est" if k.startswith("bps") else f"codebook/{k}": float(v)
                           for k, v in output.stats.items()})
            if "loss/rate" in values:
                values["rate/bps_est"] = values["loss/rate"] * sr
                values["lambda_rd"] = lam
            if output.bits is not None:
                values["rate/bits_est"] = float(torch.as_tensor(output.bits).detach().float().mean())
            values = dict(values)
            logs = {"step": done, **values}
            history.append(logs)
            if main:
                accelerator.log(values, step=done)
                append_jsonl(out / "log.jsonl", logs)
            bar.set_postfix(loss=f"{values['loss/total']:.4f}", lr=f"{values['lr']:.2e}")
        if due(done, cfg.eval_every, cfg.steps):
            if main:
                scores, samples = evaluate(accelerator.unwrap_model(model), data.eval_clips(), sr, device)
                reason = collapse_reason(scores)
                scores["collapsed"] = float(reason is not None)
                if reason:
                    logger.warning("step %d: the model has collapsed (its output ignores its input): %s", done, reason)
                accelerator.log({f"eval/{k}": v for k, v in scores.items()}, step=done)
                logs.update({f"eval/{k}": v for k, v in scores.items()})
                # an eval row of its own: the step's row is already written
                append_jsonl(out / "log.jsonl", {"step": done, **{f"eval/{k}": v for k, v in scores.items()}})
                for i, (clip_id, ref, est) in enumerate(samples if writer is not None else []):
                    writer.add_audio(f"eval/{i}_{clip_id}/reconstruction", torch.from_numpy(est)[None], done, sr)
                    if not originals_logged:
                        writer.add_audio(f"eval/{i}_{clip_id}/original", torch.from_numpy(ref)[None], done, sr)
                    image = spectrogram_image(eval_mel(torch.from_numpy(ref)[None])[0],
                                              eval_mel(torch.from_numpy(est)[None])[0])
                    writer.add_image(f"eval/{i}_{clip_id}/mel_original_above", image, done, dataformats="HWC")
                originals_logged = True
            accelerator.wait_for_everyone()
        if due(done, cfg.save_every, end):
            state_dir = save_state(accelerator, out, done, cfg.keep_states)
        if main and (due(done, cfg.export_every, cfg.steps) or out_of_time):
            export_dir = out / ("final" if done == cfg.steps or out_of_time else f"export/step-{done}")
            core = accelerator.unwrap_model(model)
            if hasattr(core, "save_pretrained"):
                core.save_pretrained(str(export_dir), safe_serialization=True)
            else:
                export_dir = None
        if done >= end:
            break
    bar.close()
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(start_step=start, step=end, seconds=time.time() - t0, last_logs=logs, export_dir=export_dir,
                       state_dir=state_dir, history=history, is_main_process=main)
