"""The codec a TTS model's tokens come from, loaded from the record the shards and the export carry.

A record (`manifest.json`'s "codec", `config.json`'s "codec") names the codec (`name_or_path` / `name`) and
its identity (`config_hash`, `weights_digest`, `tokens_digest`, compared by `tokenizer.identity`: a codec
whose decoder was retrained on the same tokens is accepted), plus the codes per frame and, for codecs with
post-hoc quantization (Stable Codec's FSQ), the setting the tokens were made with (`fsq_levels`,
`fsq_stages`), which is applied again before the identity is compared.
"""

from __future__ import annotations

from tokenizer.auto import AutoCodecTokenizer
from tokenizer.utils.errors import CodecError

from .errors import TTSError


def load_codec(record: dict, source: str | None = None, where: str = "the model"):
    """A `CodecTokenizer` that makes the recorded tokens (`AutoCodecTokenizer.from_record`: loaded from
    `source` when given, else the recorded path, then the recorded name); TTSError naming what differs."""
    try:
        return AutoCodecTokenizer.from_record(record, source, where=where, hint="give its folder: synthesize --codec PATH")
    except TTSError:
        raise
    except CodecError as exc:
        raise TTSError(str(exc)) from None
