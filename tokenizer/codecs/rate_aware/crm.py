"""CNN-RWKV mixture (CRM) block of the Rate-Aware speech codec (Xu et al. 2025).

A 1x1 convolution, then the channels split in half: one half goes through a SEANet-style residual conv
block (local detail), the other is downsampled in time by a strided conv, runs through RWKV blocks (long
context at a lower frame rate) and is upsampled back; the halves are concatenated, fused by a 1x1 conv
and added to the input.

Length-aware like the blocks in `tokenizer/modules/`: convolutions pad each item from its own length
(zeros), the RWKV blocks are unidirectional and the upsampling is a transposed conv with kernel = stride
(output frame t depends only on downsampled frame t // stride), so an item gives the same output alone
and zero-padded inside a batch.
"""

from __future__ import annotations

import torch
from torch import nn

from ...modules.conv import PaddedConv1d
from .rwkv import RWKVBlock
from ...modules.seanet import SEANetResBlock


class CRMBlock(nn.Module):
    """(B, C, T) -> (B, C, T). `channels` must be even; `rwkv_layers` RWKV blocks run at 1/`downsample`
    of the frame rate on C/2 channels; `kernel_size`/`dilation` of the conv branch."""

    def __init__(self, channels: int, rwkv_layers: int = 1, downsample: int = 2, kernel_size: int = 3,
                 dilation: int = 1, chunk_size: int = 32):
        super().__init__()
        if channels % 2:
            raise ValueError(f"CRM channels must be even, got {channels}")
        half = channels // 2
        conv = dict(pad_mode="zeros")
        self.inp = PaddedConv1d(channels, channels, 1, **conv)
        self.conv = SEANetResBlock(half, kernel_size, dilation, compress=2, **conv)
        self.downsample = downsample
        self.down = PaddedConv1d(half, half, 2 * downsample, stride=downsample, **conv) if downsample > 1 else None
        self.rwkv = nn.ModuleList(RWKVBlock(half, i, rwkv_layers, chunk_size) for i in range(rwkv_layers))
        self.up = nn.ConvTranspose1d(half, half, downsample, stride=downsample) if downsample > 1 else None
        self.out = PaddedConv1d(channels, channels, 1, **conv)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        h, _ = self.inp(x, lengths)
        local, ctx = h.chunk(2, dim=1)
        local = self.conv(local, lengths)
        T = ctx.shape[-1]
        if self.down is not None:
            ctx, _ = self.down(ctx, lengths)
        seq = ctx.transpose(1, 2)
        for block in self.rwkv:
            seq, _ = block(seq)
        ctx = seq.transpose(1, 2)
        if self.up is not None:
            ctx = self.up(ctx)[..., :T]
        y, _ = self.out(torch.cat([local, ctx], dim=1), lengths)
        return x + y
