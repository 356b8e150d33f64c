"""Language-Codec model: SEANet encoder -> MCRVQ -> Vocos backbone -> iSTFT head."""

from __future__ import annotations


import torch

from ...utils.errors import ConfigError
from ...modeling import CodecModel
from ...model_outputs import CodecModelOutput
from ...utils.masking import length_mask
from ...modules.istft import ISTFTHead
from ...modules.seanet import SEANetEncoder
from ...modules.vocos import VocosBackbone
from ...quantizers.mcrvq import MaskedChannelRVQ
from .configuration_language_codec import LanguageCodecConfig


class LanguageCodecModel(CodecModel):
    config_class = LanguageCodecConfig
    token_modules = ("encoder", "quantizer")

    def __init__(self, config: LanguageCodecConfig):
        super().__init__(config)
        c = config
        self.encoder = SEANetEncoder(
            audio_channels=c.audio_channels, dimension=c.latent_dim, filters=c.encoder_filters,
            strides=tuple(c.encoder_strides), residual_layers=c.encoder_residual_layers,
            kernel_size=c.encoder_kernel_size, last_kernel_size=c.encoder_kernel_size,
            compress=c.encoder_compress, lstm_layers=c.encoder_lstm_layers, causal=c.encoder_causal,
        )
        self.quantizer = MaskedChannelRVQ(
            c.latent_dim, c.num_quantizers, c.codebook_size, c.num_parallel_quantizers,
            decay=c.ema_decay, dead_code_threshold=c.dead_code_threshold,
        )
        self.backbone = VocosBackbone(
            c.latent_dim, c.hidden_size, c.intermediate_size, c.num_hidden_layers,
            adanorm_num_embeddings=c.adanorm_num_embeddings, num_attention_layers=c.num_attention_layers,
            num_attention_heads=c.num_attention_heads,
        )
        self.head = ISTFTHead(c.hidden_size, c.n_fft, c.hop_length)
        self.post_init()

    @property
    def min_input_samples(self) -> int:
        # Reflect padding needs more samples than it pads at every layer; 4 frames satisfy every conv.
        return 4 * self.config.hop_length

    def supported_num_quantizers(self) -> list[int]:
        return list(self.config.quantizer_counts)

    def num_quantizers_note(self) -> str:
        return (f"the decoder is trained for these counts; fewer than the {self.config.num_parallel_quantizers} "
                "parallel MCRVQ quantizers would leave latent channels unrepresented")

    def bandwidth_id(self, k: int, batch: int, device) -> torch.Tensor:
        """AdaLayerNorm row for K codes per frame, one per item (B,)."""
        return torch.full((batch,), self.config.quantizer_counts.index(k), dtype=torch.long, device=device)

    def encode_latent(self, audio: torch.Tensor, lengths: torch.Tensor | None = None):
        """audio (B, 1, T) -> latent (B, latent_dim, F), frame lengths (B,) | None."""
        return self.encoder(audio, lengths)

    def _encode_codes(self, audio: torch.Tensor, lengths: torch.Tensor | None, num_quantizers: int):
        z, frame_lengths = self.encode_latent(audio, lengths)
        return self.quantizer.encode(z, num_quantizers), frame_lengths

    def decode_latent(self, latent: torch.Tensor, frame_lengths: torch.Tensor | None, bandwidth_id: torch.Tensor):
        """Quantized latent (B, D, F) -> audio (B, 1, F * hop)."""
        hidden = self.backbone(latent, bandwidth_id, frame_lengths)
        return self.head(hidden, frame_lengths)[:, None, :]

    def _decode_codes(self, codes: torch.Tensor, frame_lengths: torch.Tensor | None,
                      bandwidth_id: int | torch.Tensor | None = None) -> torch.Tensor:
        """`bandwidth_id` (a `decode` keyword) overrides the AdaLayerNorm row (official checkpoints: 0-3);
        default: the row of K."""
        B = codes.shape[0]
        if bandwidth_id is None:
            cond = self.bandwidth_id(codes.shape[1], B, codes.device)
        else:
            cond = torch.as_tensor(bandwidth_id, dtype=torch.long, device=codes.device).expand(B)
            if int(cond.max()) >= self.config.adanorm_num_embeddings or int(cond.min()) < 0:
                raise ConfigError(
                    f"bandwidth_id={bandwidth_id} outside [0, {self.config.adanorm_num_embeddings - 1}]"
                )
        return self.decode_latent(self.quantizer.decode(codes), frame_lengths, cond)

    def forward(self, input_values: torch.Tensor, lengths: torch.Tensor | None = None,
                num_quantizers: int | None = None) -> CodecModelOutput:
        """Training pass. In training mode without `num_quantizers`, quantizer dropout draws K uniformly
        from `quantizer_counts` (one K per batch, so the decoder is conditioned on it)."""
        if num_quantizers is None and self.training:
            counts = self.config.quantizer_counts
            num_quantizers = counts[int(torch.randint(len(counts), (1,)))]
        k = self.check_num_quantizers(num_quantizers)
        z, frame_lengths = self.encode_latent(input_values, lengths)
        mask = None if frame_lengths is None else length_mask(frame_lengths, z.shape[-1])
        q = self.quantizer(z, k, mask=mask)
        audio = self.decode_latent(q.quantized, frame_lengths, self.bandwidth_id(k, z.shape[0], z.device))
        return CodecModelOutput(
            audio=audio, codes=q.codes, commit_loss=q.commit_loss * self.config.commitment_weight,
            frame_lengths=frame_lengths, num_quantizers=k, stats=q.stats,
        )
