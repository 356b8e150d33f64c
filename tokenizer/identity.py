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
"""

from __future__ import annotations

from collections.abc import Mapping

# the keys that may differ between two records of the same tokens
WEIGHTS_KEYS = ("weights_digest", "tokens_digest", "same_tokens_as")
IDENTITY_KEYS = ("model_type", "config_hash", *WEIGHTS_KEYS)


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
