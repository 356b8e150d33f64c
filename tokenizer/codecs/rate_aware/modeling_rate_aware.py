"""Rate-Aware Learned Speech Compression model (Xu et al. 2025): no quantizer codebooks, but scalar
rounding with a learned channel-wise entropy model, trained on L = R(y) + R(z) + lambda D.

    x_f = STFT(x)                     "same" padding, power-law compressed complex spectrum
    y = g_a(x_f)                      CNN-RWKV mixture (CRM) encoder, strided in time
    z = h_a(y); z_hat = round(z)      hyperprior, coded with a per-channel factorized density
    F_mean, F_scale = h_s(z_hat)
    for slice i of y (in order):      channel-wise autoregression
        mu_i, sigma_i = e_i(F_mean, F_scale, y_hat_<i)       (RWKV block + parameter net)
        q_i = round(y_i - mu_i);  y_hat_i = q_i + mu_i       (q_i coded with N(0, sigma_i))
        y_bar_i = y_hat_i + 0.5 tanh(lrp_i(F_mean, y_hat_<=i))   (latent residual prediction)
    x_hat = iSTFT(g_s(y_bar))

Training: likelihoods of y + u and z + u (u ~ U(-0.5, 0.5), Ballé et al.), the decoder and the context
nets see straight-through rounded values (y_hat = mu + round(y - mu) forward, identity gradient).

Codes (the tokenizer API): LongTensor (B, latent_dim + hyper_latent_dim, F) at the y frame rate:
rows [0, latent_dim) hold q (the y symbols), rows [latent_dim, ...) hold z_hat, each z frame repeated over
the `hyper_stride` y frames it covers; all offset by M = codebook_size // 2 into [0, codebook_size).
The symbols are clamped to [-M, M - 1].

Determinism: everything between integer symbols and the coding distributions (h_s, the slice nets, the
residual prediction) runs in float64 on a copy of the weights, means are rounded to a 2^-10 grid and
scales replaced by a table index, and each stream is coded alone (batch 1). Encoder and decoder thus
compute identical tables on one machine; across machines a disagreement needs two float64 evaluations
to straddle a rounding boundary. Training (`forward`) runs in the model's own dtype.
"""

from __future__ import annotations

import copy
import hashlib

import torch

from ...model_outputs import CodecModelOutput
from ...modeling import CodecModel
from ...modules.conv import conv_output_lengths
from ...utils.masking import zero_past_lengths
from .configuration_rate_aware import RateAwareConfig
from .context_model import ChannelwiseEntropyModel, LatentContext
from .entropy import FactorizedPrior, ScaleTable, gaussian_likelihood, quantize_pmf, ste_round, table_bits
from .transforms import Analysis, HyperAnalysis, Synthesis, spectral_features


class RateAwareModel(CodecModel):
    """Assembly of the transforms (`transforms.py`), the context model (`context_model.py`) and the
    z prior with the integer coding tables (`entropy.py`); the training objective lives in the trainer
    (`training.codec.losses.rate_distortion_loss`)."""

    config_class = RateAwareConfig

    def __init__(self, config: RateAwareConfig):
        super().__init__(config)
        c = config
        bins = c.n_fft // 2 + 1
        chunk = c.rwkv_chunk_size
        self.analysis = Analysis(2 * bins, c.encoder_channels, c.encoder_strides, c.rwkv_layers,
                                 c.crm_blocks_per_scale, c.crm_downsample, c.latent_dim, chunk)
        self.synthesis = Synthesis(c.latent_dim, c.encoder_channels, c.encoder_strides, c.rwkv_layers,
                                   c.crm_blocks_per_scale, c.crm_downsample, c.n_fft, c.stft_hop_length, chunk)
        self.hyper_analysis = HyperAnalysis(c.latent_dim, c.hyper_channels, c.hyper_latent_dim, c.hyper_stride,
                                            c.crm_downsample, chunk)
        self.entropy = ChannelwiseEntropyModel(c.latent_dim, c.num_slices, c.hyper_latent_dim, c.hyper_channels,
                                               c.hyper_stride, c.entropy_hidden, c.min_scale, c.crm_downsample, chunk)
        self.prior = FactorizedPrior(c.hyper_latent_dim, init_scale=c.prior_init_scale)
        n = c.codebook_size
        # Integer coding tables (see entropy.py), saved with the weights so every machine decodes alike.
        self.register_buffer("gaussian_counts", torch.from_numpy(quantize_pmf(self.scale_table.pmf(n // 2))).int())
        self.register_buffer("prior_counts", torch.ones(c.hyper_latent_dim, n, dtype=torch.int32))
        self.register_buffer("prior_counts_key", torch.zeros((), dtype=torch.int64))
        self._entropy64 = None
        self.post_init()
        self.update_entropy_tables()

    # ---------------------------------------------------------- contract
    @property
    def scale_table(self) -> ScaleTable:
        c = self.config
        return ScaleTable(c.min_scale, c.max_scale, c.num_scales)

    def supported_num_quantizers(self) -> list[int]:
        return [self.config.num_quantizers]

    def num_quantizers_note(self) -> str:
        c = self.config
        return (f"the rate-aware codec always codes all {c.num_quantizers} latent channels ({c.latent_dim} y + "
                f"{c.hyper_latent_dim} z); its rate is set by rd_lambda")

    # ---------------------------------------------------------- tables and digests
    def _prior_key(self) -> int:
        h = hashlib.sha256()
        for name, p in sorted(self.prior.named_parameters()):
            h.update(name.encode())
            h.update(p.detach().to("cpu", torch.float32).numpy().tobytes())
        return int.from_bytes(h.digest()[:8], "little", signed=True)

    @torch.no_grad()
    def update_entropy_tables(self, force: bool = False) -> bool:
        """Rebuild the z coding tables from the learned prior if its parameters changed since they were
        built (or `force`). Returns True when rebuilt. Call after training; `save_pretrained` calls it."""
        if any(p.is_meta for p in self.prior.parameters()):
            return False  # being built on the meta device by from_pretrained: the loaded buffers are used
        key = self._prior_key()
        if not force and int(self.prior_counts_key) == key:
            return False
        counts = quantize_pmf(self.prior.pmf(self.config.symbol_offset))
        self.prior_counts.copy_(torch.from_numpy(counts).to(self.prior_counts))
        self.prior_counts_key.fill_(key)
        return True

    def density_parameters(self) -> list[torch.nn.Parameter]:
        """The parameters of z's factorized density (the trainer gives them their own learning rate:
        `training.codec.config.OptimConfig.entropy_lr_mult`)."""
        return list(self.prior.parameters())

    @torch.no_grad()
    def coded_bits(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """What `compress` would spend on each item of audio (B, 1, T) (unpadded batch), in eval mode:
        hard-rounded symbols priced by the integer coding tables (-log2 of their counts; the range coder
        matches this to well under 1%). Returns {"bits_y", "bits_z"} (B,) float64 and the symbols
        {"y_symbols" (B, latent_dim, F), "z_symbols" (B, hyper_latent_dim, F_z)} int64. Rebuilds stale z
        tables first."""
        self.update_entropy_tables()
        q, z_sym, _, ctx = self.quantize(audio)
        m = self.config.symbol_offset
        channels = torch.arange(self.config.hyper_latent_dim, device=z_sym.device)[None, :, None]
        bits_z = table_bits(self.prior_counts, channels.expand_as(z_sym), z_sym, m).sum((1, 2))
        bits_y = table_bits(self.gaussian_counts, ctx.scale_index, q, m).sum((1, 2))
        return {"bits_y": bits_y, "bits_z": bits_z, "y_symbols": q, "z_symbols": z_sym}

    def save_pretrained(self, save_directory, *args, **kwargs):
        self.update_entropy_tables()
        return super().save_pretrained(save_directory, *args, **kwargs)

    def entropy_float64(self) -> ChannelwiseEntropyModel:
        """A float64 copy of the entropy model (cached until any weight changes) for coding."""
        versions = self._versions()
        if self._entropy64 is None or self._entropy64[0] != versions:
            with torch.inference_mode(False), torch.no_grad():
                copy64 = copy.deepcopy(self.entropy).to(torch.float64).eval()
            self._entropy64 = (versions, copy64)
        return self._entropy64[1]

    # ---------------------------------------------------------- pieces
    def spectral_features(self, audio: torch.Tensor) -> torch.Tensor:
        """audio (B, 1, T) -> compressed STFT features (B, 2 * (n_fft // 2 + 1), ceil(T / stft_hop))."""
        c = self.config
        return spectral_features(audio, c.n_fft, c.stft_hop_length, c.spectral_compression)

    def analyze(self, audio: torch.Tensor, lengths: torch.Tensor | None = None):
        """audio (B, 1, T) -> y (B, latent_dim, F), z (B, hyper_dim, F_z), frame lengths (B,) | None, z lengths."""
        stft_lengths = None if lengths is None else conv_output_lengths(lengths, self.config.stft_hop_length)
        y, y_lengths = self.analysis(self.spectral_features(audio), stft_lengths)
        z, z_lengths = self.hyper_analysis(y, y_lengths)
        return y * self.config.latent_gain, z * self.config.hyper_latent_gain, y_lengths, z_lengths

    def synthesize(self, y_bar: torch.Tensor, frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """y_bar (B, latent_dim, F) -> audio (B, 1, F * hop_length)."""
        return self.synthesis(y_bar / self.config.latent_gain, frame_lengths)

    def latent_context(self, z_symbols: torch.Tensor, frames: int, lengths: torch.Tensor | None = None) -> LatentContext:
        """Start coding (or decoding) y given integer z symbols (B, C_z, F_z), in float64."""
        z_lengths = None if lengths is None else conv_output_lengths(lengths, self.config.hyper_stride)
        return LatentContext(self.entropy_float64(), self.scale_table, z_symbols, frames, lengths, z_lengths)

    def clamp_symbols(self, x: torch.Tensor) -> torch.Tensor:
        m = self.config.symbol_offset
        return torch.round(x).clamp(-m, m - 1).long()

    # ---------------------------------------------------------- tokenizer API
    @torch.no_grad()
    def quantize(self, audio: torch.Tensor, lengths: torch.Tensor | None = None):
        """audio (B, 1, T) -> y symbols (B, latent_dim, F), z symbols (B, C_z, F_z) (int64, clamped),
        frame lengths (B,) | None, and the `LatentContext` after all slices (for its y_hat / means)."""
        y, z, y_lengths, _ = self.analyze(audio, lengths)
        z_sym = self.clamp_symbols(z)
        ctx = self.latent_context(z_sym, y.shape[-1], y_lengths)
        q = torch.zeros_like(y, dtype=torch.long)
        y64 = y.to(torch.float64)
        for i in range(self.config.num_slices):
            sl = self.entropy.slice(i)
            mean, _ = ctx.slice_parameters(i)
            q[:, sl] = self.clamp_symbols(y64[:, sl] - mean)
            ctx.set_slice(i, q[:, sl])
        return q, z_sym, y_lengths, ctx

    def pack_codes(self, q: torch.Tensor, z_symbols: torch.Tensor) -> torch.Tensor:
        """y symbols (B, C_y, F) and z symbols (B, C_z, F_z) -> codes (B, C_y + C_z, F) in [0, codebook_size)."""
        z_rep = z_symbols.repeat_interleave(self.config.hyper_stride, dim=-1)[..., : q.shape[-1]]
        return torch.cat([q, z_rep], dim=1) + self.config.symbol_offset

    def unpack_codes(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """codes (B, K, F) -> y symbols (B, C_y, F), z symbols (B, C_z, ceil(F / hyper_stride))."""
        c = self.config
        sym = codes.long() - c.symbol_offset
        return sym[:, : c.latent_dim], sym[:, c.latent_dim :, :: c.hyper_stride]

    def _encode_codes(self, audio: torch.Tensor, lengths: torch.Tensor | None, num_quantizers: int):
        """codes (B, latent_dim + hyper_latent_dim, ceil(T / hop)) (see the module docstring)."""
        q, z_sym, frame_lengths, _ = self.quantize(audio, lengths)
        return self.pack_codes(q, z_sym), frame_lengths

    @torch.no_grad()
    def decode_symbols(self, q: torch.Tensor, z_symbols: torch.Tensor, frame_lengths: torch.Tensor | None = None):
        """y symbols (B, C_y, F), z symbols (B, C_z, F_z) -> audio (B, 1, F * hop)."""
        ctx = self.latent_context(z_symbols, q.shape[-1], frame_lengths)
        for i in range(self.config.num_slices):
            ctx.slice_parameters(i)
            ctx.set_slice(i, q[:, self.entropy.slice(i)])
        return self.synthesize_context(ctx, frame_lengths)

    @torch.no_grad()
    def synthesize_context(self, ctx: LatentContext, frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Audio (B, 1, F * hop) from a context whose slices are all set."""
        y_bar = ctx.latent().to(next(self.synthesis.parameters()).dtype)
        return self.synthesize(y_bar, frame_lengths)

    def _decode_codes(self, codes: torch.Tensor, frame_lengths: torch.Tensor | None) -> torch.Tensor:
        q, z_sym = self.unpack_codes(codes)
        if frame_lengths is not None and bool((frame_lengths == codes.shape[-1]).all()):
            frame_lengths = None  # the unmasked path: what a single item decodes with
        return self.decode_symbols(q, z_sym, frame_lengths)

    # ---------------------------------------------------------- training
    def forward(self, input_values: torch.Tensor, lengths: torch.Tensor | None = None) -> CodecModelOutput:
        """Training pass: noisy likelihoods and straight-through rounding in training mode; in eval mode
        hard (clamped) rounding, so `bits` estimates the coded size under the continuous model.

        Returns a `CodecModelOutput` without codes: commit_loss 0 (no codebooks); rate_loss = estimated
        bits of y and z over the batch / input samples; bits (B,) per item; frame_lengths (B,) | None;
        stats {"bps_y", "bps_z", "bps"} in bits per second."""
        y, z, y_lengths, z_lengths = self.analyze(input_values, lengths)
        if self.training:
            z_hat = ste_round(z)
            z_lik = self.prior.likelihood(z + torch.empty_like(z).uniform_(-0.5, 0.5))
        else:
            z_hat = self.clamp_symbols(z).to(z.dtype)
            z_lik = self.prior.likelihood(z_hat)
        f_mean, f_scale = self.entropy.hyper(z_hat, y.shape[-1], z_lengths, y_lengths)
        y_hats, y_bars, y_liks = [], [], []
        for i in range(self.config.num_slices):
            sl = self.entropy.slice(i)
            mu, sigma = self.entropy.slice_params(i, f_mean, f_scale, torch.cat(y_hats, 1) if y_hats else y[:, :0])
            if self.training:
                y_liks.append(gaussian_likelihood(y[:, sl] + torch.empty_like(mu).uniform_(-0.5, 0.5) - mu, sigma))
                y_hat = ste_round(y[:, sl] - mu) + mu
            else:
                q = self.clamp_symbols(y[:, sl] - mu).to(y.dtype)
                y_liks.append(gaussian_likelihood(q, sigma))
                y_hat = q + mu
            y_hats.append(y_hat)
            y_bars.append(y_hat + self.entropy.residual(i, f_mean, torch.cat(y_hats, 1)))
        audio = self.synthesize(torch.cat(y_bars, 1), y_lengths)

        y_lik = torch.cat(y_liks, 1)
        bits_y = -zero_past_lengths(torch.log2(y_lik), y_lengths).sum((1, 2))
        bits_z = -zero_past_lengths(torch.log2(z_lik), z_lengths).sum((1, 2))
        bits = bits_y + bits_z
        B, T = input_values.shape[0], input_values.shape[-1]
        samples = lengths.to(bits.dtype) if lengths is not None else bits.new_full((B,), T)
        seconds = float(samples.sum()) / self.config.sampling_rate
        stats = {"bps_y": float(bits_y.detach().sum()) / seconds, "bps_z": float(bits_z.detach().sum()) / seconds,
                 "bps": float(bits.detach().sum()) / seconds}
        return CodecModelOutput(audio=audio, commit_loss=bits.new_zeros(()), frame_lengths=y_lengths,
                                rate_loss=bits.sum() / samples.sum(), bits=bits, stats=stats)
