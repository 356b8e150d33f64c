"""When two codec records name the same tokens.

A record is a dict such as `CodecTokenizer.identity()` or `codec_info()` (a shard manifest's "codec", a TTS
export's "codec"): `model_type`, `config_hash` (the architecture), `weights_digest` (every weight and buffer),
`tokens_digest` (the weights that map audio to codes, `CodecModel.token_modules`) and `same_tokens_as`
(weights digests of earlier checkpoints whose tokens this one makes unchanged: a decoder retrained on frozen
encoder and quantizer, which `train-codec`'s `model.freeze` records in the exported config).

Two records name the same tokens when model type and config hash agree and
- their weights digests are equal, or
- both carry a tokens digest and these are equal (same encoder and quantizer, other decoder), or
- one's weights digest is in the other's `same_tokens_as` (so records written before tokens digests were
  recorded stay valid with a checkpoint whose decoder was retrained).

The one check every consumer of a record runs (shard readers, the TTS corpus, TTS exports, synthesis) is
`check_same_tokens(a, b, where_a, where_b)`: the identity fields present, the same tokens, then the same
shape of tokens (`TOKEN_FIELDS`). `AutoCodecTokenizer.from_record` loads the codec a record names and checks it
with the same function.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .utils.errors import CodecError

# the keys that may differ between two records of the same tokens
WEIGHTS_KEYS = ("weights_digest", "tokens_digest", "same_tokens_as")
IDENTITY_KEYS = ("model_type", "config_hash", *WEIGHTS_KEYS)
# the keys without which a record cannot say which codec made its tokens
REQUIRED_KEYS = ("model_type", "config_hash", "weights_digest")
# what the tokens look like: two records of the same tokens agree on these too (frame rate within 1e-9)
TOKEN_FIELDS = ("sampling_rate", "frame_rate", "num_quantizers", "codebook_size")


def tokens_mismatch(a: Mapping, b: Mapping) -> str | None:
    """None when records `a` and `b` name the same tokens (see the module docstring); else the key that
    tells them apart: "model_type", "config_hash", "tokens_digest" or "weights_digest"."""
    for key in ("model_type", "config_hash"):
        if a.get(key) != b.get(key):
            return key
    wa, wb = a.get("weights_digest"), b.get("weights_digest")
    if wa is not None and wa == wb:
        return None
    ta, tb = a.get("tokens_digest"), b.get("tokens_digest")
    if ta and tb:
        return None if ta == tb else "tokens_digest"
    if (wa and wa in (b.get("same_tokens_as") or ())) or (wb and wb in (a.get("same_tokens_as") or ())):
        return None
    return "weights_digest"


def missing_identity(record: Mapping, keys: tuple = REQUIRED_KEYS) -> str | None:
    """The first of `keys` that `record` lacks (absent, None or ""), or None when it has them all."""
    return next((key for key in keys if record.get(key) in (None, "")), None)


def _same_value(a: Any, b: Any) -> bool:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    return a == b or (numbers and math.isclose(a, b, rel_tol=1e-9))


def record_mismatch(a: Mapping, b: Mapping, fields: tuple = TOKEN_FIELDS) -> str | None:
    """The key that tells the tokens of records `a` and `b` apart: the identity (`tokens_mismatch`) first, then
    the first of `fields` present in both with other values; None when they name the same tokens."""
    key = tokens_mismatch(a, b)
    if key is not None:
        return key
    return next((f for f in fields if a.get(f) is not None and b.get(f) is not None
                 and not _same_value(a.get(f), b.get(f))), None)


def check_same_tokens(a: Mapping, b: Mapping, where_a: str, where_b: str, error: type = CodecError,
                      fields: tuple = TOKEN_FIELDS, required: tuple = ("num_quantizers", "codebook_size")) -> None:
    """Raise `error` (one line) unless records `a` and `b` name the same tokens: "<where> records no codec
    <key>" for a missing identity key or one of `required`, "codec mismatch in <key>: <where_a> has ..., <where_b>
    has ..." for the first key that differs (`record_mismatch`)."""
    for record, where in ((a, where_a), (b, where_b)):
        key = missing_identity(record, (*REQUIRED_KEYS, *required))
        if key is not None:
            raise error(f"{where} records no codec {key}: cannot tell which codec made its tokens")
    key = record_mismatch(a, b, fields)
    if key is not None:
        raise error(f"codec mismatch in {key}: {where_a} has {a.get(key)!r}, {where_b} has {b.get(key)!r}")
