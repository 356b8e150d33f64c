"""One adapter per transformers codec family: its rates, codebook, operating points as `num_quantizers`,
and the calls into transformers' `encode` / `decode` (see `base` for the contract and batching).

| family | operating point -> num_quantizers | default K | batching |
| encodec | `bandwidth` (kbps) -> floor(bw / (frame_rate x log2 codebook)) | transformers' default bandwidth (the lowest) | one by one; padded batch on request (causal, padding mask) |
| dac | `n_quantizers`, 1..n_codebooks | n_codebooks | one by one |
| mimi | `num_quantizers`, num_semantic_quantizers..num_quantizers | config.num_quantizers | one by one (padding mask ignored, transformers #43377) |
| xcodec, higgs_audio_v2_tokenizer | `bandwidth` (kbps) -> K as EnCodec | the highest bandwidth (transformers' default) | one by one |
| wavtokenizer | one codebook | 1 | one by one |
| xcodec2, neucodec | one FSQ code (codebook = prod(levels)) | 1 | one by one |
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ...audio import resample
from ...utils.errors import ConfigError
from .base import TransformersCodecModel


class _BandwidthAdapter(TransformersCodecModel):
    """Families whose operating point is a bandwidth out of `config.target_bandwidths`; each maps to a
    number of RVQ stages through the quantizer's own `get_num_quantizers_for_bandwidth`."""

    def _bandwidths(self) -> dict[int, float]:
        out = {}
        for bw in self.hf.config.target_bandwidths:
            out.setdefault(int(self.hf.quantizer.get_num_quantizers_for_bandwidth(bw)), bw)
        return out

    def supported_num_quantizers(self) -> list[int]:
        return sorted(self._bandwidths())

    def num_quantizers_note(self) -> str:
        return "one per target bandwidth: " + ", ".join(f"{k} <- {bw:g} kbps" for k, bw in sorted(self._bandwidths().items()))

    def bandwidth_for(self, k: int) -> float:
        """The transformers `bandwidth` argument (kbps) that gives `k` codebooks."""
        return self._bandwidths()[self.check_num_quantizers(k)]


class EncodecAdapter(_BandwidthAdapter):
    """EnCodec (`EncodecModel`). K follows the bandwidth: 24 kHz model, 75 Hz frames, 1024-entry codebooks:
    1.5/3/6/12/24 kbps = 2/4/8/16/32 codebooks (the VALL-E setting is 6 kbps = K 8). Default K: the
    bandwidth transformers uses when none is given (the lowest). Causal, unnormalised EnCodec (the 24 kHz
    model) may be encoded in padded batches with its padding mask (`padded_batches`): a frame only sees
    past samples, so right padding cannot change an item's codes (float rounding aside). The chunked, normalised 48 kHz variant (codes come with
    per-chunk scales) is refused."""

    receptive_field_seconds = 1.0  # causal convolutions and an LSTM: the LSTM carries state further back

    def check(self) -> None:
        c = self.hf.config
        if c.chunk_length_s is not None or c.normalize:
            raise ConfigError(f"EnCodec with chunk_length_s={c.chunk_length_s}, normalize={c.normalize} (the 48 kHz "
                              "variant) is not supported: its codes come with per-chunk scales")

    @property
    def batch_invariant(self) -> bool:
        return bool(self.hf.config.use_causal_conv)

    @property
    def default_num_quantizers(self) -> int:
        return int(self.hf.quantizer.get_num_quantizers_for_bandwidth(self.hf.config.target_bandwidths[0]))

    def _encode(self, audio, lengths, k):
        mask = torch.arange(audio.shape[-1], device=audio.device)[None] < lengths[:, None]
        out = self.hf.encode(audio, padding_mask=mask[:, None], bandwidth=self.bandwidth_for(k), return_dict=True)
        return out.audio_codes[0]  # (1 chunk, B, K, F) -> (B, K, F)

    def _decode(self, codes, **kwargs):
        return self.hf.decode(codes[None], [None], return_dict=True).audio_values


class DacAdapter(TransformersCodecModel):
    """Descript Audio Codec (`DacModel`): K = `n_quantizers`, any of 1..n_codebooks (default all).
    Non-causal convolutions: encoded one item at a time."""

    receptive_field_seconds = 0.5

    @property
    def hop_length(self) -> int:
        return int(np.prod(self.hf.config.downsampling_ratios))

    def supported_num_quantizers(self) -> list[int]:
        return list(range(1, int(self.hf.config.n_codebooks) + 1))

    def _encode(self, audio, lengths, k):
        return self.hf.encode(audio, n_quantizers=k, return_dict=True).audio_codes[:, :k]

    def _decode(self, codes, **kwargs):
        return self.hf.decode(audio_codes=codes, return_dict=True).audio_values


class MimiAdapter(TransformersCodecModel):
    """Mimi (`MimiModel`): K = `num_quantizers`, from the semantic codebooks (`num_semantic_quantizers`,
    always first) up to `config.num_quantizers` (default all). Mimi ignores its padding mask
    (transformers #43377), so items are encoded one at a time."""

    receptive_field_seconds = 2.0  # causal transformer with a sliding window over the frames

    @property
    def hop_length(self) -> int:
        return int(round(self.sampling_rate / float(self.hf.config.frame_rate)))

    def supported_num_quantizers(self) -> list[int]:
        c = self.hf.config
        return list(range(max(1, int(c.num_semantic_quantizers)), int(c.num_quantizers) + 1))

    def num_quantizers_note(self) -> str:
        return "the semantic codebooks come first and are always kept"

    def _encode(self, audio, lengths, k):
        return self.hf.encode(audio, num_quantizers=k).audio_codes

    def _decode(self, codes, **kwargs):
        return self.hf.decode(codes).audio_values


class XcodecAdapter(_BandwidthAdapter):
    """X-Codec (`XcodecModel`): a HuBERT semantic branch and an acoustic branch feed one RVQ; K follows
    `bandwidth` as for EnCodec; default: the highest bandwidth (transformers' default). The semantic
    model sees whole utterances (attention): encoded one item at a time."""

    receptive_field_seconds = 2.0

    @property
    def sampling_rate(self) -> int:
        return int(self.hf.config.sample_rate)

    @property
    def min_input_samples(self) -> int:
        return max(self.hop_length, 400)  # HuBERT's convolutional feature encoder needs 400 samples

    @property
    def default_num_quantizers(self) -> int:
        return int(self.hf.quantizer.get_num_quantizers_for_bandwidth(self.hf.config.target_bandwidths[-1]))

    def _encode(self, audio, lengths, k):
        return self.hf.encode(audio, bandwidth=self.bandwidth_for(k), return_dict=True).audio_codes

    def _decode(self, codes, **kwargs):
        return self.hf.decode(codes, return_dict=True).audio_values


class HiggsAudioV2Adapter(XcodecAdapter):
    """Higgs Audio v2 tokenizer (`HiggsAudioV2TokenizerModel`): the X-Codec layout at 24 kHz (its HuBERT
    runs at `semantic_sample_rate`, resampled inside the model). transformers' class needs torchaudio."""

    @property
    def min_input_samples(self) -> int:
        ratio = self.sampling_rate / int(self.hf.config.semantic_sample_rate)
        return max(self.hop_length, math.ceil(400 * ratio))


class WavTokenizerAdapter(TransformersCodecModel):
    """WavTokenizer (`WavTokenizerModel`): one VQ codebook (K = 1), Vocos decoder. Non-causal encoder:
    encoded one item at a time."""

    receptive_field_seconds = 1.0

    def _encode(self, audio, lengths, k):
        return self.hf.encode(audio).audio_codes

    def _decode(self, codes, **kwargs):
        return self.hf.decode(codes).audio_values


class Xcodec2Adapter(TransformersCodecModel):
    """X-Codec2 (`Xcodec2Model`): a w2v-BERT semantic branch and an acoustic branch, one FSQ code per frame
    (K = 1, codebook = product of `quantization_levels`). Its input features come from the family's
    feature extractor (`Xcodec2FeatureExtractor`, which needs torchaudio). One item at a time."""

    receptive_field_seconds = 2.0

    @property
    def codebook_size(self) -> int:
        return int(np.prod(self.hf.config.quantization_levels))

    @property
    def min_input_samples(self) -> int:
        return max(self.hop_length, 800)  # a few 25 ms fbank frames

    @classmethod
    def feature_extractor_class(cls):
        from transformers import Xcodec2FeatureExtractor

        return Xcodec2FeatureExtractor

    @classmethod
    def feature_extractor_for(cls, source, hf_config):
        from pathlib import Path

        fe_class = cls.feature_extractor_class()
        if source is not None:
            try:
                return fe_class.from_pretrained(source)
            except (OSError, ValueError):
                if not Path(str(source)).is_dir():  # a directory without preprocessor_config.json: the defaults
                    raise
        return fe_class(sampling_rate=cls._input_rate(hf_config), hop_length=cls._encoder_hop(hf_config))

    @staticmethod
    def _input_rate(hf_config) -> int:
        return int(hf_config.sampling_rate)

    @staticmethod
    def _encoder_hop(hf_config) -> int:
        return int(hf_config.hop_length)

    @property
    def sampling_rate(self) -> int:
        return self._input_rate(self.hf.config)

    @property
    def hop_length(self) -> int:
        return self._encoder_hop(self.hf.config)

    def _encode(self, audio, lengths, k):
        clips = [audio[i, 0, : int(n)].cpu().numpy() for i, n in enumerate(lengths)]
        inputs = self.feature_extractor(clips, sampling_rate=self.sampling_rate, return_tensors="pt")
        inputs = {key: v.to(audio.device) for key, v in inputs.items()}
        return self.hf.encode(**inputs).audio_codes

    def _decode(self, codes, **kwargs):
        return self.hf.decode(audio_codes=codes).audio_values


class NeuCodecAdapter(Xcodec2Adapter):
    """NeuCodec (`NeuCodecModel`): the X-Codec2 layout, encoding 16 kHz (`input_sampling_rate`) and
    decoding at 24 kHz (`output_sampling_rate`). `sampling_rate` is the input rate and decoded audio is
    resampled to it (soxr), so every consumer compares like with like."""

    @classmethod
    def feature_extractor_class(cls):
        from transformers import NeuCodecFeatureExtractor

        return NeuCodecFeatureExtractor

    @staticmethod
    def _input_rate(hf_config) -> int:
        return int(hf_config.input_sampling_rate)

    @staticmethod
    def _encoder_hop(hf_config) -> int:
        return int(hf_config.encoder_hop_length)

    def _decode(self, codes, **kwargs):
        audio = self.hf.decode(audio_codes=codes).audio_values
        audio = audio.reshape(audio.shape[0], -1).float().cpu().numpy()
        out = [resample(a, int(self.hf.config.output_sampling_rate), self.sampling_rate) for a in audio]
        return torch.from_numpy(np.stack(out)).to(codes.device)
