"""`StableCodecTokenizer`: the generic tokenizer plus Stable Codec's post-hoc FSQ selection and the
continuous (unquantized) latent path.

    tok.set_quantization(levels=5, stages=2)        # or preset="2x15625_700bps"
    tok.bitrate, tok.codebook_size, tok.num_quantizers   # 700.0, 15625, 2
"""

from __future__ import annotations

import torch

from ...audio import AudioInput, pad_batch, prepare_audio
from ...tokenization import CodecTokenizer
from .configuration_stable_codec import QUANTIZATION_PRESETS


class StableCodecTokenizer(CodecTokenizer):
    """Adds `set_quantization`, FSQ fields in `codec_info` and `encode_continuous`."""

    QUANTIZATION_PRESETS = QUANTIZATION_PRESETS

    def set_quantization(self, levels: int | None = None, stages: int | None = None,
                         preset: str | None = None) -> "StableCodecTokenizer":
        """Select the post-hoc FSQ: `levels` per dimension and stage (not below the smallest trained level
        count unless several stages reach a fine enough grid), `stages` residual stages (odd levels), or a
        named preset: "1x46656_400bps" (6 x 1), "2x15625_700bps" (5 x 2), "4x729_1000bps" (3 x 4).
        `bitrate`, `codebook_size`, `num_quantizers` and `config_hash` follow; `save_pretrained` keeps the
        choice. Raises ConfigError for an unusable configuration. Returns self."""
        self.model.set_quantization(levels, stages, preset)
        return self

    def apply_record(self, record: dict) -> "StableCodecTokenizer":
        """The FSQ levels and stages the recorded tokens were made with (`fsq_levels`, `fsq_stages`)."""
        if record.get("fsq_levels") is not None:
            self.set_quantization(levels=int(record["fsq_levels"]), stages=int(record.get("fsq_stages") or 1))
        return self

    @property
    def levels(self) -> int:
        """FSQ levels per latent dimension and stage."""
        return int(self.config.quantizer_levels)

    @property
    def stages(self) -> int:
        return int(self.config.num_quantizers)

    def codec_info(self, num_quantizers: int | None = None) -> dict:
        info = super().codec_info(num_quantizers)
        k = info["num_quantizers"]
        info.update(fsq_levels=self.levels, fsq_stages=k, fsq_scales=self.config.stage_scales[:k],
                    fsq_dim=int(self.config.latent_dim))
        return info

    @torch.no_grad()
    def encode_continuous(self, audio: AudioInput, sampling_rate: int | None = None):
        """Continuous mode: audio -> (latents FloatTensor (B, latent_dim, F) = tanh of the encoder output,
        0 past each end; frame lengths LongTensor (B,)). Not chunked: meant for clips, not hour-long files.
        `self.model.decode_latent(latents, lengths)` turns them back into audio."""
        clips = prepare_audio(audio, sampling_rate, self.sampling_rate)
        batch = pad_batch(clips, self.sampling_rate, multiple=self.hop_length)
        latents, frames = self.model.encode_continuous(batch.audio.to(self.device), batch.lengths.to(self.device))
        return latents.cpu(), frames.cpu()
