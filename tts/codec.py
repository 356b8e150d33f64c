"""The codec a TTS model's tokens come from, loaded from the record the shards and the export carry.

A record (`manifest.json`'s "codec", `config.json`'s "codec") names the codec (`name_or_path` / `name`) and
its identity (`config_hash`, `weights_digest`, `tokens_digest`, compared by `tokenizer.identity`: a codec
whose decoder was retrained on the same tokens is accepted), plus the codes per frame and, for codecs with
post-hoc quantization (Stable Codec's FSQ), the setting the tokens were made with (`fsq_levels`,
`fsq_stages`), which is applied again before the identity is compared.
"""

from __future__ import annotations

import logging

from tokenizer.auto import AutoCodecTokenizer
from tokenizer.utils.errors import CodecError
from tokenizer.identity import tokens_mismatch

from .errors import TTSError

logger = logging.getLogger(__name__)


def load_codec(record: dict, source: str | None = None, where: str = "the model"):
    """A `CodecTokenizer` equal to the recorded codec (loaded from `source` when given); TTSError when it
    cannot be loaded or differs in config hash or weights digest."""

    # the recorded path may be another machine's or a moved folder: the recorded name (a built-in codec) next
    explicit = bool(source)
    candidates = [source] if source else list(dict.fromkeys(
        str(c) for c in (record.get("name_or_path"), record.get("name")) if c))
    if not candidates:
        raise TTSError(f"{where} records no codec name to load it from")
    tok, errors = None, []
    for source in candidates:
        try:
            tok = AutoCodecTokenizer.from_pretrained(source)
            if record.get("fsq_levels") is not None and hasattr(tok, "set_quantization"):
                tok.set_quantization(levels=int(record["fsq_levels"]), stages=int(record.get("fsq_stages") or 1))
            break
        except CodecError as exc:
            errors.append(str(exc))
    if tok is None:
        tried = " or ".join(repr(c) for c in candidates)
        raise TTSError(f"cannot load the codec {tried} that {where} was trained on: {errors[0]}"
                       + ("" if explicit else " (moved or made elsewhere? give its folder: synthesize --codec PATH)"))
    if source != candidates[0]:
        logger.info("%s: codec %r not found; loaded the recorded name %r", where, candidates[0], source)
    ours = tok.identity()
    key = tokens_mismatch({**record, "model_type": record.get("model_type", ours["model_type"])}, ours)
    if key is not None:
        raise TTSError(f"codec mismatch: {where} was trained on tokens of {record.get('name')!r} with {key} "
                       f"{record.get(key)}, but {source!r} has {ours[key]}")
    if record.get("weights_digest") != ours["weights_digest"]:
        logger.info("%s: decoding with %s, whose decoder differs from the one at training time (same tokens)",
                    where, source)
    try:
        tok.model.check_num_quantizers(int(record.get("num_quantizers")))
    except (CodecError, TypeError, ValueError):
        raise TTSError(f"codec {source!r} cannot make {record.get('num_quantizers')} codes per frame") from None
    return tok
