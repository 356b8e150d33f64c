"""Speech codecs packaged as HF-style tokenizers.

    from tokenizer import AutoCodecTokenizer, AutoCodecConfig
    tok = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("language-codec", preset="tiny"))
    enc = tok(audio, sampling_rate=16000)        # enc.codes (B, K, F), enc.lengths (B,)
    wavs = tok.batch_decode(enc)                 # list of 1-D float arrays

The names below are imported on first use (PEP 562), so `import tokenizer` costs next to nothing and
loads neither torch nor any codec family until one is asked for.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "AutoCodecConfig": ".auto", "AutoCodecTokenizer": ".auto",
    "CodecConfig": ".configuration", "CodecModel": ".modeling", "CodecTokenizer": ".tokenization",
    "CodecEncoding": ".outputs", "CodecDecoding": ".outputs",
    "ToolkitError": ".utils.errors", "CodecError": ".utils.errors", "AudioError": ".utils.errors",
    "ConfigError": ".utils.errors",
    "CODECS": ".registry", "get_codec_spec": ".registry", "list_codecs": ".registry",
    "register_with_transformers": ".registry", "load_audio": ".audio",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tokenizer' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
