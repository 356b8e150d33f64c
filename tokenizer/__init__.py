"""Speech codecs packaged as HF-style tokenizers.

    from tokenizer import AutoCodecTokenizer, AutoCodecConfig
    tok = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("language-codec", preset="tiny"))
    enc = tok(audio, sampling_rate=16000)        # enc.codes (B, K, F), enc.lengths (B,)
    wavs = tok.batch_decode(enc)                 # list of 1-D float arrays
"""

from .audio import load_audio
from .auto import AutoCodecConfig, AutoCodecTokenizer
from .configuration import CodecConfig
from .errors import AudioError, CodecError, ConfigError
from .modeling import CodecModel
from .outputs import CodecDecoding, CodecEncoding
from .registry import CODECS, get_codec_spec, list_codecs, register_with_transformers
from .tokenization import CodecTokenizer

register_with_transformers()

__all__ = [
    "AutoCodecConfig", "AutoCodecTokenizer", "CodecConfig", "CodecModel", "CodecTokenizer", "CodecEncoding",
    "CodecDecoding", "CodecError", "AudioError", "ConfigError", "CODECS", "get_codec_spec", "list_codecs",
    "load_audio",
]
