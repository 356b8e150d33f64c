"""Training utilities shared by every trainer in the toolkit (the codec trainer in `training.codec`, the
TTS trainers in `tts`): nothing here knows about codecs or TTS.

- `config`: dataclass configs read from YAML with `--section.key=value` overrides, typed and checked;
- `schedule`: learning-rate schedules as pure functions of the step (warm-up, then cosine / linear /
  exponential decay or constant), so a resumed run gets exactly the same rates;
- `checkpointing`: resumable `accelerate` state under `<out>/state/step-N` with rotation, the latest
  finished state, exports at intervals;
- `tracking`: hyper-parameter flattening for TensorBoard and the `log.jsonl` writer.

Dependencies: `tokenizer` <- `data_prep` <- `evaluation` <- `training` <- `tts`.
"""
