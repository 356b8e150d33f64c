"""`AutoCodecConfig` and `AutoCodecTokenizer`: load any registered codec by name, directory or hub id."""

from __future__ import annotations

import logging
import os

import torch

from .codecs.transformers_codecs.base import TransformersCodecTokenizer
from .configuration import CodecConfig
from .identity import check_same_tokens
from .utils.errors import CodecError, ConfigError
from .loading import PRETRAINED_DIR, load_model, read_model_type, resolve, transformers_codec_source
from .registry import CODECS, TRANSFORMERS_CODECS, get_codec_spec, register_with_transformers
from .tokenization import CodecTokenizer

logger = logging.getLogger(__name__)


class AutoCodecConfig:
    """Config of any registered codec."""

    @staticmethod
    def for_model(name: str, preset: str | None = None, **overrides) -> CodecConfig:
        """`AutoCodecConfig.for_model("language-codec", preset="tiny", num_quantizers=4)`."""
        spec = get_codec_spec(name)
        config = spec.config_class.preset(preset) if preset else spec.config_class()
        if overrides:
            fields = config.to_dict()
            unknown = [k for k in overrides if k not in fields]
            if unknown:
                raise ConfigError(f"unknown config field(s) {unknown} for {spec.model_type}")
            # Fields that default to None are derived from others in __post_init__ (e.g. quantizer_counts
            # from num_quantizers): let them be derived again unless the caller sets them.
            for key in fields:
                if key not in overrides and getattr(spec.config_class, key, 0) is None:
                    fields[key] = None
            fields.update(overrides)
            config = spec.config_class.from_dict(fields)
        return config

    @staticmethod
    def from_pretrained(name_or_path: str | os.PathLike) -> CodecConfig:
        where = resolve(name_or_path)
        if isinstance(where, str):
            builtin = PRETRAINED_DIR / where
            if (builtin / "config.json").is_file():
                where = builtin
            else:
                spec = CODECS[where]
                return spec.config_class.preset(spec.default_preset)
        return get_codec_spec(read_model_type(where)).config_class.from_pretrained(str(where))


class AutoCodecTokenizer:
    """Load any registered codec as its family's `CodecTokenizer` class.

    `from_pretrained(x)` accepts a local `save_pretrained` directory, a built-in name (`"language-codec"`:
    the weights shipped in the package; a built-in name without shipped weights raises unless
    `random_weights=True` asks for the untrained default preset) or a hub id (`owner/name`, downloaded
    with huggingface_hub). Loading also registers the codecs with transformers' `AutoConfig`/`AutoModel`.

    An audio codec that transformers ships (config `model_type` in `registry.TRANSFORMERS_CODECS`:
    encodec, dac, mimi, xcodec, ...), as a `save_pretrained` directory or a hub id such as
    `facebook/encodec_24khz` (loaded by transformers), comes back as a `TransformersCodecTokenizer`
    (`tokenizer.codecs.transformers_codecs`) with the same API.
    """

    @staticmethod
    def from_config(config: CodecConfig, seed: int | None = 0) -> CodecTokenizer:
        if config.model_type in TRANSFORMERS_CODECS:  # a transformers config (EncodecConfig, ...)
            return TransformersCodecTokenizer.from_config(config, seed=seed)
        register_with_transformers(config.model_type)
        return get_codec_spec(config.model_type).tokenizer_class.from_config(config, seed=seed)

    @staticmethod
    def from_pretrained(name_or_path: str | os.PathLike, device: str | torch.device | None = None,
                        random_weights: bool = False) -> CodecTokenizer:
        if transformers_codec_source(name_or_path) is not None:
            return TransformersCodecTokenizer.from_pretrained(name_or_path, device=device)
        model = load_model(name_or_path, random_weights=random_weights)
        spec = get_codec_spec(model.config.model_type)
        register_with_transformers(spec.model_type)
        if not isinstance(name_or_path, str) or spec.model_type != name_or_path.replace("-", "_"):
            logger.info("loaded %s weights from %s", spec.name, name_or_path)
        tok = spec.tokenizer_class(model)
        return tok.to(device) if device else tok

    @staticmethod
    def from_record(record: dict, source: str | os.PathLike | None = None, device: str | torch.device | None = None,
                    where: str = "the record", hint: str = "give its folder") -> CodecTokenizer:
        """The codec a codec record names (a shard manifest's or a TTS export's "codec", `codec_info()`), with
        the record's settings re-applied (`apply_record`) and checked to make the same tokens
        (`identity.check_same_tokens`: a codec whose decoder was retrained on frozen tokens passes) at the
        recorded quantizer count. Loaded from `source` when given, else from the recorded `name_or_path` and
        then the recorded `name` (a path from another machine or a moved folder; a built-in name still
        loads). Raises CodecError naming what could not be loaded or what differs (`hint`: how to name the
        codec's folder instead, said when the recorded names fail)."""
        explicit = source is not None
        candidates = [str(source)] if explicit else list(dict.fromkeys(
            str(c) for c in (record.get("name_or_path"), record.get("name")) if c))
        if not candidates:
            raise CodecError(f"{where} records no codec name to load it from")
        tok, errors = None, []
        for candidate in candidates:
            try:
                tok = AutoCodecTokenizer.from_pretrained(candidate, device=device).apply_record(record)
                break
            except CodecError as exc:
                errors.append(str(exc))
        if tok is None:
            tried = " or ".join(repr(c) for c in candidates)
            raise CodecError(f"cannot load the codec {tried} that {where} names: {errors[0]}"
                             + ("" if explicit else f" (moved or made elsewhere? {hint})"))
        if candidate != candidates[0]:
            logger.info("%s: codec %r not found; loaded the recorded name %r", where, candidates[0], candidate)
        k = record.get("num_quantizers")
        try:
            ours = tok.codec_info(int(k)) if k is not None else tok.identity()
        except (CodecError, TypeError, ValueError):
            raise CodecError(f"codec {candidate!r} cannot make {k!r} codes per frame ({where})") from None
        ours.setdefault("model_type", tok.config.model_type)
        check_same_tokens({**record, "model_type": record.get("model_type", ours["model_type"])}, ours, where,
                          repr(candidate), required=())
        if record.get("weights_digest") != ours["weights_digest"]:
            logger.info("%s: decoding with %s, whose decoder differs from the recorded one (same tokens)",
                        where, candidate)
        return tok
