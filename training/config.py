"""Dataclass configs read from YAML, with dotted command-line overrides: the one loader of every trainer.

    cfg = load_config(TrainConfig, "configs/codec/language_codec_tiny.yaml", ["--optim.lr=1e-4", "--steps=20"])

A config is a tree of plain dataclasses whose fields all have defaults, so a YAML file only says what
differs. Unknown keys and values of the wrong type raise `ConfigError` naming the key. Values are coerced
to the field's type, so `lr: 1e-4` (a string to YAML 1.1) is the float 0.0001, and nested dataclasses are
built from mappings.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml

from tokenizer.utils.errors import ConfigError


def get_dotted(obj: Any, key: str) -> Any:
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """`value` as the annotated type (float from "1e-4", nested dataclasses from dicts)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}={value!r} has the wrong type (expected {hint})")
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return build(hint, value, prefix=f"{key}.")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{key}={value!r} must be true or false")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} must be a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={value!r} must be a number") from None
        if hint is int:
            if number != int(number):
                raise ConfigError(f"{key}={value!r} must be an integer")
            return int(number)
        return number
    if hint is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}={value!r} must be a string")
        return str(value)
    if hint in (list, dict):
        if not isinstance(value, hint):
            raise ConfigError(f"{key}={value!r} must be a {hint.__name__}")
        return value
    return value


def check_max_minutes(max_minutes: float | None) -> None:
    """ConfigError unless a trainer's `max_minutes` is unset or a number > 0 (inf: no limit); 0, negatives and
    NaN are refused rather than read as "no limit" or "stop after one step"."""
    if max_minutes is not None and not max_minutes > 0:
        raise ConfigError(f"max_minutes={max_minutes} must be > 0 (or unset)")


def build(cls: type, values: dict, prefix: str = "") -> Any:
    """Instantiate dataclass `cls` from a (nested) dict; unknown keys raise `ConfigError`."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
                          f"known under {prefix or 'top level'}: {', '.join(sorted(names))}")
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in values.items()}
    return cls(**kwargs)


def parse_overrides(items: list[str]) -> dict:
    """["--optim.lr=1e-4", "--steps", "20", "--model.overrides.num_quantizers=4"] -> nested dict.

    Values are parsed as YAML scalars/lists (`--disc.mpd_periods=[2,3]`, `--data.root=null`).
    """
    out: dict = {}
    i = 0
    while i < len(items):
        item = items[i]
        if not item.startswith("--") or len(item) == 2:
            raise ConfigError(f"unexpected argument {item!r}: overrides look like --section.key=value")
        key, eq, raw = item[2:].partition("=")
        if not eq:
            if i + 1 >= len(items) or items[i + 1].startswith("--"):
                raise ConfigError(f"override {item!r} has no value; write --{key}=VALUE")
            raw = items[i + 1]
            i += 1
        i += 1
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.replace("-", "_").split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override --{key} conflicts with another override of {part}")
        node[parts[-1]] = value
    return out


def merge(base: dict, extra: dict) -> dict:
    """Recursive dict merge: `extra` wins; nested mappings are merged, everything else replaced."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(cls: type, path: str | Path | None = None, overrides: list[str] | dict | None = None) -> Any:
    """Dataclass `cls` from a YAML file (or its defaults when `path` is None) with overrides applied."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
        if not isinstance(values, dict):
            raise ConfigError(f"config {path} must be a mapping at the top level")
    if overrides:
        values = merge(values, overrides if isinstance(overrides, dict) else parse_overrides(overrides))
    return build(cls, values)


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def dump_config(cfg: Any, path: str | Path) -> None:
    """Write the whole config as YAML (what a run used, next to its outputs)."""
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
