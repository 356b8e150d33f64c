"""The one TTS trainer (every model of `tts.registry`) on `accelerate`, readable top to bottom in `train()`.

Each optimizer step: the batch of this step (`tts.data.TokenBatches`: a pure function of seed and step,
bounded by `data.max_tokens`), the model's loss (`forward(batch) -> TTSOutput`), backward, gradient
clipping, then the NaN/inf guard: a step whose loss or gradient norm is not finite (on any process) is
skipped (no optimizer update), counted (`nonfinite_steps` in `log.jsonl` and the state) and logged. Under
fp16 the gradient scaler makes that decision (it skips inf/NaN steps and lowers the scale). A state whose
weights are not finite is never written. Mixed precision: `auto` is bf16 on GPUs that have it, float32
elsewhere (fp16 loss-scale collapse is the most reported failure of open VALL-E recipes); `fp16`/`bf16`
can be asked for.

Reproducibility and resume: the learning rate is `training.schedule.lr_scale(step)` (warm-up then linear
decay, as VALL-E), torch's global generator is re-seeded from (seed, step) before every step (dropout, the
NAR stage drawn per step), batches come from (seed, step). A run resumed from `<out>/state/step-N`
(`--resume`, after a kill -9 included) therefore logs the same losses as an uninterrupted one.

One run per folder: `run.json` (and every state) records the run's identity (`run_identity`: model, preset,
overrides, start, codec, vocabulary, data); a fresh run into a folder that holds a run, or a `--resume` with
another identity, is refused in one line naming what differs. Exports are written beside their folder and
renamed into place; a resume that finds the schedule done re-exports a missing or cut-short `final`. After
`nonfinite_patience` non-finite steps in a row (fp16's scaler aside) the run stops without writing anything.

Outputs under `out_dir`: `run.json`, `config.yaml`, `log.jsonl` (one row per logged step, validation rows of
their own), TensorBoard events (losses, validation loss and top-10 accuracy per codebook, synthesized validation
sentences as audio), `state/step-N` (resumable), `samples/step-N/*.wav`, and exports (`final`,
`export/step-N`): `save_pretrained` directories whose config records the codec (name, config hash,
weights digest, K, codebook size, rates) and the phoneme vocabulary, plus `phonemes.json`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import gather_object

from data_prep.text.vocab import PhonemeVocab
from tokenizer.utils.errors import ConfigError
from tokenizer.utils.cli import quiet_progress_bars
from tokenizer.identity import IDENTITY_KEYS, tokens_mismatch
from training.checkpointing import disk_errors, due, latest_state, resolve_resume, save_state
from training.config import build, check_max_minutes, merge, parse_overrides
from training.schedule import SCHEDULES, lr_scale
from training.run import TrainResult as RunResult, begin_run, past_deadline
from training.tracking import append_jsonl

from .codec import load_codec as load_recorded_codec
from .data import TokenBatches, TTSCorpus, check_codec_identity, fixed_batches
from .errors import TTSError, check_writable
from .generation import GenerationConfig
from .registry import export_digest, get_model_module, load_model

logger = logging.getLogger(__name__)


@dataclass
class DataConfig:
    dirs: list = field(default_factory=list)
    max_tokens: int = 6000          # padded phonemes + prompt + target tokens per batch and process
    prompt: str = "prefix"          # prefix | other (see tts.data)
    prompt_seconds: float = 3.0     # longest prompt
    max_seconds: float = 20.0       # longer utterances are left out
    valid_utterances: int = 4
    valid_speakers: list = field(default_factory=list)


@dataclass
class OptimConfig:
    lr: float = 5e-4
    betas: list = field(default_factory=lambda: [0.9, 0.95])
    weight_decay: float = 0.01
    warmup_steps: int = 32_000
    schedule: str = "linear"
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0


@dataclass
class SampleConfig:
    """Validation sentences synthesized at intervals (continuation of the first `prompt_seconds` of the
    first `num` validation utterances), logged as audio."""

    num: int = 2
    prompt_seconds: float = 1.5
    do_sample: bool = False
    max_seconds_per_phoneme: float = 0.25


@dataclass
class TrainConfig:
    model: str = "valle"
    preset: str = "tiny"
    overrides: dict = field(default_factory=dict)   # model config fields, e.g. {"dropout": 0.0}
    init_from: str | None = None                    # start from this export (e.g. train the NAR after the AR)
    stage: str = "both"                             # both | ar | nar
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    samples: SampleConfig = field(default_factory=SampleConfig)
    steps: int = 3000
    stop_at: int | None = None                      # stop early (the schedule still spans `steps`)
    max_minutes: float | None = None                # stop (state + export) after this much training time
    seed: int = 0
    out_dir: str = "runs/tts"
    resume: str | None = None
    mixed_precision: str = "auto"                   # auto | no | bf16 | fp16
    log_every: int = 10
    eval_every: int = 500
    save_every: int = 500
    keep_states: int = 2
    export_every: int = 0                           # 0: export at the end only
    sample_every: int = 1000                        # 0: never
    log_with: str = "tensorboard"                   # tensorboard | none
    nonfinite_patience: int = 3                     # stop after this many non-finite steps in a row (not fp16)

    def __post_init__(self):
        """Refuse what would run nothing or without a limit while claiming one (as train-codec does)."""
        for key in ("steps", "log_every", "eval_every", "save_every", "keep_states", "nonfinite_patience"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}={getattr(self, key)} must be >= 1")
        for key in ("export_every", "sample_every"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}={getattr(self, key)} must be >= 0 (0: never)")
        if self.stop_at is not None and self.stop_at < 1:
            raise ConfigError(f"stop_at={self.stop_at} must be >= 1 (or unset)")
        check_max_minutes(self.max_minutes)
        o, d, sm = self.optim, self.data, self.samples
        # each written "not good" so that NaN, which fails every comparison, is refused too
        checks = [("optim.lr", o.lr, 0 < o.lr < math.inf, "a number > 0"),
                  ("optim.weight_decay", o.weight_decay, 0 <= o.weight_decay < math.inf, "a number >= 0"),
                  ("optim.grad_clip", o.grad_clip, 0 <= o.grad_clip < math.inf, "a number >= 0 (0: off)"),
                  ("optim.min_lr_ratio", o.min_lr_ratio, 0 <= o.min_lr_ratio <= 1, "in [0, 1]"),
                  ("optim.warmup_steps", o.warmup_steps, o.warmup_steps >= 0, ">= 0"),
                  ("optim.betas", o.betas, len(o.betas) == 2 and all(0 <= float(b) < 1 for b in o.betas),
                   "two numbers in [0, 1)"),
                  ("optim.schedule", o.schedule, o.schedule in SCHEDULES, f"one of {', '.join(SCHEDULES)}"),
                  ("data.max_tokens", d.max_tokens, d.max_tokens >= 1, ">= 1"),
                  ("data.prompt_seconds", d.prompt_seconds, 0 < d.prompt_seconds < math.inf, "a number > 0"),
                  ("data.max_seconds", d.max_seconds, d.max_seconds > 0, "> 0 (inf: no limit)"),
                  ("data.valid_utterances", d.valid_utterances, d.valid_utterances >= 0, ">= 0"),
                  ("samples.num", sm.num, sm.num >= 0, ">= 0"),
                  ("samples.prompt_seconds", sm.prompt_seconds, 0 < sm.prompt_seconds < math.inf, "a number > 0"),
                  ("samples.max_seconds_per_phoneme", sm.max_seconds_per_phoneme,
                   0 < sm.max_seconds_per_phoneme < math.inf, "a number > 0")]
        for key, value, ok, what in checks:
            if not ok:
                raise ConfigError(f"{key}={value!r} must be {what}")


def load_train_config(model: str, preset: str, path: str | None = None,
                      overrides: list[str] | dict | None = None) -> TrainConfig:
    """Defaults <- the model's training preset <- YAML file <- `--section.key=value` overrides."""
    import yaml

    module = get_model_module(model)
    if preset not in module.TRAIN_PRESETS:
        raise ConfigError(f"unknown preset {preset!r} for {model}; known: {', '.join(module.TRAIN_PRESETS)}")
    values = merge({"model": model, "preset": preset}, module.TRAIN_PRESETS[preset])
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
            if not isinstance(loaded, dict):
                raise ConfigError(f"config {path} must be a YAML mapping (section: values), got a "
                                  f"{type(loaded).__name__}")
            values = merge(values, loaded)
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {path} is not valid YAML: {exc}") from None
    if overrides:
        values = merge(values, overrides if isinstance(overrides, dict) else parse_overrides(overrides))
    return build(TrainConfig, values)


@dataclass
class TrainResult(RunResult):
    """`training.run.TrainResult` plus the number of steps the NaN/inf guard skipped."""

    nonfinite_steps: int = 0


def build_model(cfg: TrainConfig, corpus: TTSCorpus):
    """The model of `cfg.model` / `cfg.preset` (+ overrides) for the corpus's codec and vocabulary (seeded)."""
    module = get_model_module(cfg.model)
    reserved = {"num_quantizers", "codebook_size", "phoneme_vocab_size", "frame_rate", "codec", "phoneme_tokens"}
    bad = sorted(reserved & set(cfg.overrides))
    if bad:
        raise ConfigError(f"overrides.{bad[0]} comes from the shard manifest and cannot be overridden")
    config = module.CONFIG_CLASS.preset(
        cfg.preset, num_quantizers=corpus.num_quantizers, codebook_size=corpus.codebook_size,
        phoneme_vocab_size=len(corpus.vocab), frame_rate=corpus.frame_rate, codec=dict(corpus.codec),
        phoneme_tokens=list(corpus.vocab.tokens), language=corpus.language, **cfg.overrides)
    if getattr(config, "aligner_features", None) == "codec":  # MobileSpeech's aligner reads the codec's code vectors
        try:
            codec = load_recorded_codec(corpus.codec, where="the shards")
        except TTSError as exc:
            raise TTSError(f"{exc} (MobileSpeech's aligner reads that codec's code vectors; the override "
                           "aligner_features=codes learns code embeddings instead)") from None
        torch.manual_seed(cfg.seed)
        return module.MODEL_CLASS.for_codec(config, codec)
    torch.manual_seed(cfg.seed)
    return module.MODEL_CLASS(config)


def init_model(cfg: TrainConfig, corpus: TTSCorpus):
    """The model of export `cfg.init_from`, checked against the corpus's codec and phoneme vocabulary."""

    model = load_model(cfg.init_from)
    record = model.config.check_codec_record(cfg.init_from)
    check_codec_identity(record, corpus.codec, cfg.init_from, corpus.dirs[0] if corpus.dirs else "the corpus")
    if list(model.config.phoneme_tokens or []) != list(corpus.vocab.tokens):
        raise TTSError(f"{cfg.init_from} was trained with another phoneme vocabulary than {corpus.dirs}")
    return model.train()


RUN_FILE = "run.json"
# what a run folder holds once a run has started in it (a fresh run there would mix with it)
RUN_CONTENTS = ("state", "log.jsonl", "final", "export", "config.yaml", RUN_FILE)


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def run_identity(cfg: TrainConfig, corpus: TTSCorpus) -> dict:
    """What makes a run folder one run: the model type, preset and overrides, the export it started from (its
    digest, so another path to the same export is the same start), the stage, the seed and what makes a batch,
    the codec record of its tokens, the phoneme vocabulary (digest) and the data (the folders as given, for the
    reader, and a digest of the training and validation utterances' ids and lengths, which is what is
    compared, so a corpus moved elsewhere is the same data). Saved in `<out>/run.json` and in every state."""
    start = Path(cfg.init_from) if cfg.init_from else None
    start = export_digest(start) if start and (start / "model.safetensors").is_file() else cfg.init_from
    return {"model": cfg.model, "preset": cfg.preset, "overrides": dict(cfg.overrides), "init_from": start,
            "stage": cfg.stage, "seed": cfg.seed,
            "batches": {"max_tokens": cfg.data.max_tokens, "prompt": cfg.data.prompt,
                        "prompt_seconds": cfg.data.prompt_seconds},
            "codec": {k: corpus.codec.get(k) for k in (*IDENTITY_KEYS, "num_quantizers", "codebook_size")},
            "vocabulary": _digest(list(corpus.vocab.tokens)),
            "data": {"dirs": [str(Path(d).resolve()) for d in corpus.dirs],
                     "utterances": _digest(sorted([u.id, u.num_frames] for u in (*corpus.train, *corpus.valid))),
                     "valid": _digest(sorted(u.id for u in corpus.valid))}}


def run_difference(saved: dict, now: dict) -> str | None:
    """None when `now` continues the run `saved` (`run_identity`); else what differs, in words. The codec may
    differ by its decoder only (`tokenizer.identity`: the same tokens)."""
    for key in ("model", "preset", "overrides", "init_from", "stage", "seed", "batches", "vocabulary"):
        if key in saved and saved.get(key) != now.get(key):
            return f"{key} was {saved.get(key)!r}, now {now.get(key)!r}"
    a, b = saved.get("codec") or {}, now.get("codec") or {}
    for key in (tokens_mismatch(a, b), "num_quantizers", "codebook_size"):
        if key is not None and a.get(key) != b.get(key):
            return f"codec {key} was {a.get(key)!r}, now {b.get(key)!r} (another codec's tokens)"
    da, db = saved.get("data") or {}, now.get("data") or {}
    for key in ("utterances", "valid"):
        if da.get(key) != db.get(key):
            what = "training data" if key == "utterances" else "validation split"
            return f"the {what} differs (was {da.get('dirs')}, now {db.get('dirs')})"
    return None


def check_run_folder(cfg: TrainConfig, identity: dict | None) -> Path | None:
    """Refuse (ConfigError, one line) a run that would mix with another in `cfg.out_dir`: a fresh run into a
    folder that already holds one, or a `--resume` whose model, preset, codec, vocabulary or data differ from
    those saved with the state (or in `<out>/run.json`). Returns the state to resume from (None: fresh)."""
    out = Path(cfg.out_dir)
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"--out {out}: {parent} is a file, not a folder")
            break
    if not cfg.resume:
        found = [name for name in RUN_CONTENTS if (out / name).exists()]
        if found:
            how = ("continue it with --resume" if latest_state(out) is not None
                   else "it saved no state to resume: remove the folder")
            raise ConfigError(f"--out {out} already holds a run ({', '.join(found)}): {how}, or give another --out")
        check_writable(out, f"--out {out}")
        return None
    state = resolve_resume(out, cfg.resume)
    saved = json.loads((state / "trainer.json").read_text()).get("run")
    if saved is None and (out / RUN_FILE).is_file():
        saved = json.loads((out / RUN_FILE).read_text())
    if saved is None:
        logger.warning("%s records no run identity (written by an older version): resuming unchecked", state)
        return state
    diff = run_difference(saved, identity)
    if diff:
        raise ConfigError(f"--resume from {state}: not the same run: {diff}; start it in another --out")
    return state


def export_intact(directory: Path) -> bool:
    """True when `directory` is a whole export: config.json parses and model.safetensors is complete (its
    header and the data length it declares; a file cut short by a kill is not)."""
    from safetensors import safe_open

    try:
        json.loads((directory / "config.json").read_text())
        with safe_open(str(directory / "model.safetensors"), framework="pt") as f:
            f.keys()
        return True
    except Exception:  # noqa: BLE001 - any failure to read means: not intact (SafetensorError has no base)
        return False


def resolve_precision(requested: str) -> str:
    if requested not in ("auto", "no", "bf16", "fp16"):
        raise ConfigError(f"mixed_precision={requested!r} not one of auto, no, bf16, fp16")
    if not torch.cuda.is_available():
        if requested in ("bf16", "fp16"):
            logger.warning("mixed_precision=%s needs a GPU here; training in float32", requested)
        return "no"
    if requested == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return requested


@torch.no_grad()
def validate(model, batches, device) -> dict:
    """Mean validation metrics over `batches` (weighted by items): AR loss/top-10, NAR loss/top-10 of every
    codebook 2..K."""
    model.eval()
    sums, weight = defaultdict(float), defaultdict(float)
    stages = range(1, model.config.num_quantizers) if getattr(model, "nar", None) is not None else [None]
    for batch in batches:
        batch = batch.to(device)
        for stage in stages:
            out = model(batch, stage=stage)
            for k, v in out.metrics.items():
                if k.startswith("ar/") and stage not in (None, 1):
                    continue  # the AR does not depend on the stage: count it once
                if k in ("loss", "nar/loss"):
                    continue
                sums[k] += v * len(batch)
                weight[k] += len(batch)
    model.train()
    return {k: sums[k] / weight[k] for k in sums}


def merge_process_metrics(per_process: list[dict]) -> dict:
    """One dict of logged values from each process's: a key's mean over the processes that logged it (the
    NAR / mask-decoder levels drawn differ between processes)."""
    keys = sorted(set().union(*per_process))
    return {k: float(np.mean([v[k] for v in per_process if k in v])) for k in keys}


def _params_finite(model) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def synthesize_samples(model, utts, codec, cfg: SampleConfig, frame_rate: float, seed: int):
    """Continuation of each validation utterance's first `cfg.prompt_seconds` -> [(id, audio (T,) or None)]."""
    n_prompt = max(1, round(cfg.prompt_seconds * frame_rate))
    chosen = [u for u in utts if u.num_frames > n_prompt][: cfg.num]
    if not chosen:
        return []
    gen = GenerationConfig(do_sample=cfg.do_sample, max_seconds_per_phoneme=cfg.max_seconds_per_phoneme, seed=seed)
    codes = model.generate([u.phonemes.long() for u in chosen], [u.codes[:, :n_prompt].long() for u in chosen],
                           [len(u.phonemes) for u in chosen], gen)
    out = []
    for u, c in zip(chosen, codes):
        full = torch.cat([u.codes[:, :n_prompt].long(), c], dim=-1)
        audio = codec.batch_decode(full[None])[0] if codec is not None and full.shape[-1] else None
        out.append((u.id, audio))
    return out


def load_codec(record: dict):
    """The codec a corpus was tokenized with (`tts.codec.load_codec`); None (with a warning) when it cannot be
    loaded or is not the same codec, so training goes on without audio samples."""
    try:
        return load_recorded_codec(record, where="the shards")
    except TTSError as exc:
        logger.warning("validation samples are not synthesized: %s", exc)
        return None


def train(cfg: TrainConfig, model=None, corpus: TTSCorpus | None = None) -> TrainResult:
    """Run (or resume) training of `cfg` on the shard directories `cfg.data.dirs` (or `corpus`).
    `model`: train this module instead of building `cfg.model` (it must follow `tts.model`'s contract)."""
    out = Path(cfg.out_dir)
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(), mixed_precision=resolve_precision(cfg.mixed_precision),
        project_dir=str(out), log_with=None if cfg.log_with in (None, "none") else cfg.log_with,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    main, device = accelerator.is_main_process, accelerator.device

    # ---- data and model
    if not cfg.resume:
        check_run_folder(cfg, None)  # a fresh run into another run's folder: refused before reading the corpus
    corpus = corpus or TTSCorpus.load(cfg.data.dirs, cfg.data.valid_utterances, cfg.data.valid_speakers)
    fr = corpus.frame_rate
    max_prompt = max(1, round(cfg.data.prompt_seconds * fr))
    if cfg.data.max_seconds < math.inf:
        corpus.train = [u for u in corpus.train if u.num_frames <= cfg.data.max_seconds * fr]
    batches = TokenBatches(corpus.train, cfg.data.max_tokens, cfg.seed, cfg.data.prompt, max_prompt,
                           rank=accelerator.process_index, world_size=accelerator.num_processes,
                           word_boundary_id=corpus.vocab.index[" "])
    valid = fixed_batches(corpus.valid, cfg.data.max_tokens, max_prompt, cfg.seed) if corpus.valid else []
    identity = run_identity(cfg, corpus)
    if cfg.resume:
        check_run_folder(cfg, identity)  # before the model is built and a state loaded into it
    accelerator.wait_for_everyone()  # every process has looked before the main one writes into the folder
    if model is None:
        model = init_model(cfg, corpus) if cfg.init_from else build_model(cfg, corpus)
    model.set_train_stage(cfg.stage)
    o = cfg.optim
    optimizer = torch.optim.AdamW(model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    codec = load_codec(corpus.codec) if main and cfg.sample_every else None

    # ---- resume, config.yaml, trackers
    run = begin_run(accelerator, cfg, "tts")
    start, end, writer, nonfinite = run.start, run.end, run.writer, run.saved.get("nonfinite_steps", 0)
    if main and not (out / RUN_FILE).is_file():
        (out / RUN_FILE).write_text(json.dumps(identity, indent=1) + "\n")

    history, logs, t0 = [], {}, time.time()
    t_log, last_logged, tokens = t0, start, 0
    export_dir = state_dir = None
    streak = 0  # non-finite steps in a row
    sums, counts = defaultdict(float), defaultdict(int)
    bar = tqdm(range(start, end), initial=start, total=end, disable=not main, desc="train", dynamic_ncols=True)

    # ---- the loop
    deadline = t0 + cfg.max_minutes * 60 if cfg.max_minutes else None
    for step in bar:
        torch.manual_seed(cfg.seed * 1_000_003 + step)
        scale = lr_scale(step, cfg.steps, o.warmup_steps, o.schedule, o.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = o.lr * scale
        batch = batches.batch(step).to(device)
        with accelerator.autocast():
            output = model(batch)
        loss = output.loss
        accelerator.backward(loss)
        norm = accelerator.clip_grad_norm_(model.parameters(), o.grad_clip if o.grad_clip > 0 else float("inf"))
        if accelerator.scaler is not None:  # fp16: the scaler skips non-finite steps and lowers its scale
            optimizer.step()
            skipped = accelerator.optimizer_step_was_skipped
        else:
            finite = torch.tensor([math.isfinite(float(loss.detach())) and math.isfinite(float(norm))],
                                  device=device, dtype=torch.float32)
            skipped = not bool(accelerator.gather(finite).min())  # every process skips together
            if not skipped:
                optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        if done < end and past_deadline(accelerator, deadline):
            logger.info("max_minutes=%g reached at step %d: saving and exporting", cfg.max_minutes, done)
            end = done
        streak = streak + 1 if skipped else 0
        if skipped:
            nonfinite += 1
            logger.warning("step %d: loss %s, gradient norm %s: not finite, update skipped (%d so far)",
                           done, float(loss.detach()), float(norm), nonfinite)
            if accelerator.scaler is None and streak >= cfg.nonfinite_patience:
                # skipped steps leave the weights as they were: these weights give non-finite losses batch after
                # batch (diverged, e.g. a learning rate far too high); writing them would export a broken model
                raise TTSError(f"steps {done - streak + 1}..{done}: {streak} non-finite steps in a row: the model "
                               f"has diverged; stopped without writing a state or an export (the last state: "
                               f"{state_dir or latest_state(out)}); lower optim.lr or raise optim.warmup_steps")
        else:
            for k, v in output.metrics.items():
                sums[k] += v
                counts[k] += 1
            sums["grad_norm"] += float(norm)
            counts["grad_norm"] += 1
        tokens += batch.num_tokens

        # ---- logging, validation, samples, checkpoints
        if due(done, cfg.log_every, end):
            now = time.time()
            values = {k: sums[k] / counts[k] for k in sums}
            values.update({"lr": o.lr * scale, "nonfinite_steps": nonfinite,
                           "time/seconds_per_step": (now - t_log) / max(done - last_logged, 1),
                           "tokens_per_second": tokens / max(now - t_log, 1e-9)})
            t_log, last_logged, tokens = now, done, 0
            sums, counts = defaultdict(float), defaultdict(int)
            if accelerator.num_processes > 1:  # every process logs at the same steps; keys may differ (the
                # NAR levels an item drew): each key is the mean over the processes that have it
                values = merge_process_metrics(gather_object([values]))
                values["tokens_per_second"] *= accelerator.num_processes
                values["nonfinite_steps"] = nonfinite
            logs = {"step": done, **values}
            history.append(logs)
            if main:
                accelerator.log(values, step=done)
                append_jsonl(out / "log.jsonl", logs)
            bar.set_postfix(loss=f"{values.get('loss', float('nan')):.4f}", lr=f"{values['lr']:.2e}")
        if valid and due(done, cfg.eval_every, cfg.steps):
            if main:
                scores = {f"valid/{k}": v for k, v in validate(accelerator.unwrap_model(model), valid, device).items()}
                accelerator.log(scores, step=done)
                logs.update(scores)
                append_jsonl(out / "log.jsonl", {"step": done, **scores})
            accelerator.wait_for_everyone()
        if cfg.sample_every and main and due(done, cfg.sample_every, cfg.steps):
            for utt_id, audio in synthesize_samples(accelerator.unwrap_model(model), corpus.valid or corpus.train[:2],
                                                    codec, cfg.samples, fr, cfg.seed):
                if audio is None:
                    continue
                import soundfile as sf

                (out / "samples" / f"step-{done}").mkdir(parents=True, exist_ok=True)
                sf.write(out / "samples" / f"step-{done}" / f"{utt_id}.wav", audio, codec.sampling_rate)
                if writer is not None:
                    writer.add_audio(f"samples/{utt_id}", torch.from_numpy(np.asarray(audio))[None], done,
                                     codec.sampling_rate)
        if due(done, cfg.save_every, end):
            if not _params_finite(accelerator.unwrap_model(model)):
                raise TTSError(f"step {done}: the weights are not finite; no state written (the last good one is "
                               f"{state_dir}); lower optim.lr or use mixed_precision=no")
            state_dir = save_state(accelerator, out, done, cfg.keep_states,
                                   extra={"nonfinite_steps": nonfinite, "run": identity})
        out_of_time = deadline is not None and done == end < cfg.steps
        if main and (done == cfg.steps or out_of_time or (cfg.export_every and done % cfg.export_every == 0)):
            export_dir = export(accelerator.unwrap_model(model),
                                out / ("final" if done == cfg.steps or out_of_time else f"export/step-{done}"))
        if done >= end:
            break
    bar.close()
    if main and start >= end == cfg.steps and not export_intact(out / "final"):
        # the run ended (its last state saved) but its final export was cut short or removed: make it again
        logger.warning("%s is missing or incomplete: exported again from the state of step %d", out / "final", end)
        export_dir = export(accelerator.unwrap_model(model), out / "final")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(start_step=start, step=end, seconds=time.time() - t0, last_logs=logs, export_dir=export_dir,
                       state_dir=state_dir, history=history, nonfinite_steps=nonfinite, is_main_process=main)


def export(model, directory: Path) -> Path:
    """`save_pretrained` (safetensors + config.json with the codec record and phoneme tokens) + phonemes.json."""

    if not _params_finite(model):
        raise TTSError(f"the weights are not finite: {directory} not written")
    # Written beside it, then renamed into place: a kill leaves the old export or the new one, never half of one.
    partial, old = directory.with_name(f".{directory.name}.partial"), directory.with_name(f".{directory.name}.old")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with quiet_progress_bars(), disk_errors(partial):
        model.save_pretrained(str(partial), safe_serialization=True)
    if model.config.phoneme_tokens:
        PhonemeVocab(model.config.phoneme_tokens).save(partial)
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        os.replace(directory, old)
    os.replace(partial, directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory
