"""SEANet convolutional encoder (EnCodec's), length-aware so padded batches equal single items.

Layout follows EnCodec's `SEANetEncoder` so official weights map one-to-one: an input conv, then per
stride a residual unit, ELU and a strided conv (channels doubling), a skip-connected LSTM, ELU and a
final conv to the latent dimension.
"""

from __future__ import annotations

import torch
from torch import nn

from .conv import PaddedConv1d


class SEANetResBlock(nn.Module):
    """ELU -> conv(k, dilation) -> ELU -> conv(1) with a 1x1-conv shortcut. Shapes (B, C, T) -> (B, C, T)."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: int = 1, compress: int = 2,
                 causal: bool = False, pad_mode: str = "reflect", preserve_variance: bool = False):
        super().__init__()
        hidden = channels // compress
        self.act = nn.ELU()
        conv = dict(causal=causal, pad_mode=pad_mode, preserve_variance=preserve_variance)
        self.conv1 = PaddedConv1d(channels, hidden, kernel_size, dilation=dilation, **conv)
        self.conv2 = PaddedConv1d(hidden, channels, 1, **conv)
        self.shortcut = PaddedConv1d(channels, channels, 1, **conv)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        y, _ = self.conv1(self.act(x), lengths)
        y, _ = self.conv2(self.act(y), lengths)
        return self.shortcut(x, lengths)[0] + y


class SkipLSTM(nn.Module):
    """Unidirectional multi-layer LSTM over time with a residual connection. (B, C, T) -> (B, C, T)."""

    def __init__(self, channels: int, num_layers: int = 2):
        super().__init__()
        self.lstm = nn.LSTM(channels, channels, num_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.permute(2, 0, 1)
        y, _ = self.lstm(seq)
        return (y + seq).permute(1, 2, 0)


class SEANetEncoder(nn.Module):
    """Waveform (B, C_audio, T) -> latent (B, dimension, ceil(T / prod(strides))).

    forward(x, lengths) returns `(latent, frame_lengths)`; `lengths` (B,) are true sample lengths
    (None: all full). A unidirectional LSTM runs over frames, so padding after an item never changes
    its frames; every conv reflects at the item's own end.
    """

    def __init__(self, audio_channels: int = 1, dimension: int = 128, filters: int = 32,
                 strides: tuple[int, ...] = (2, 4, 5, 8), residual_layers: int = 1, kernel_size: int = 7,
                 last_kernel_size: int = 7, residual_kernel_size: int = 3, dilation_base: int = 2,
                 compress: int = 2, lstm_layers: int = 2, causal: bool = False, pad_mode: str = "reflect"):
        super().__init__()
        conv = dict(causal=causal, pad_mode=pad_mode)
        self.input_conv = PaddedConv1d(audio_channels, filters, kernel_size, preserve_variance=True, **conv)
        self.blocks = nn.ModuleList()
        channels = filters
        for stride in strides:
            res = nn.ModuleList(
                SEANetResBlock(channels, residual_kernel_size, dilation_base**j, compress, preserve_variance=True, **conv)
                for j in range(residual_layers)
            )
            down = PaddedConv1d(channels, channels * 2, stride * 2, stride=stride, preserve_variance=True, **conv)
            self.blocks.append(nn.ModuleDict({"residual": res, "downsample": down}))
            channels *= 2
        self.lstm = SkipLSTM(channels, lstm_layers) if lstm_layers else None
        self.act = nn.ELU()
        self.output_conv = PaddedConv1d(channels, dimension, last_kernel_size, preserve_variance=True, **conv)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        x, lengths = self.input_conv(x, lengths)
        for block in self.blocks:
            for res in block["residual"]:
                x = res(x, lengths)
            x, lengths = block["downsample"](self.act(x), lengths)
        if self.lstm is not None:
            x = self.lstm(x)
        x, lengths = self.output_conv(self.act(x), lengths)
        return x, lengths
