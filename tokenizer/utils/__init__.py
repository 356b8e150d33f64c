"""The toolkit's foundation: what every package (`tokenizer`, `data_prep`, `evaluation`, `training`, `tts`)
imports, and which imports nothing of ours.

- `errors`: `ToolkitError`, the one exception type users catch (every error a user can cause is one;
  `CodecError` is the same class under its older name), and its kinds `AudioError`, `ConfigError`.
- `cli`: `run_cli`, the wrapper every console script runs in (a user error is one line, exit 2), and
  `quiet_progress_bars` for transformers' loading bars.
- `masking`: `length_mask`, `zero_past_lengths` and `pad_right`, the one place that turns per-item lengths
  of a padded batch into a mask and back.

Codec building blocks live in `tokenizer.modules`; only codec code imports those.
"""
