"""The audio codecs that transformers ships (EnCodec, DAC, Mimi, X-Codec, ...), wrapped in this toolkit's
tokenizer API: `AutoCodecTokenizer.from_pretrained("facebook/encodec_24khz")` (or a `save_pretrained`
directory of one) returns a `TransformersCodecTokenizer` with the same properties, outputs, windowing and
codec identity as the toolkit's own codecs. `base` holds what the families share, `families` one adapter
per family (its operating point mapped onto `num_quantizers`); the family list is
`tokenizer.registry.TRANSFORMERS_CODECS`. Nothing is imported here, so `import tokenizer` stays light.
"""
