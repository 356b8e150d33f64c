"""The Conformer block of MobileSpeech's encoders and Speech Mask Decoder, with optional cross-attention.

Written here rather than reusing transformers' `FastSpeech2ConformerEncoderLayer`: its convolution module
normalizes with BatchNorm (statistics over padding and over whatever else is in the batch, so a sentence's
output would depend on its batch mates in training and on tiny-batch statistics), it has no cross-attention
(the SMD attends to the prompt in every block), and its relative-position attention does not run through
`scaled_dot_product_attention`. This block: macaron FFN/2, self-attention, [cross-attention], convolution
module (pointwise + GLU, depthwise, LayerNorm, SiLU, pointwise) with padding zeroed before the depthwise
convolution, FFN/2, final LayerNorm (Gulati et al. 2020). Positions: sinusoidal, added once at the input
(so the stack's inputs must be at unit scale: `tts.layers.ScaledEmbedding`).

Shapes: x (B, L, D); mask bool (B, L), True on real positions; memory (B, M, D), memory_mask (B, M).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import sinusoidal


class Attention(nn.Module):
    """Multi-head attention of `x` over `kv` (self-attention when kv is x); key padding masked."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, kv: torch.Tensor, kv_mask: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        h = self.heads
        q = self.q(x).view(B, L, h, D // h).transpose(1, 2)
        k, v = self.kv(kv).view(B, kv.shape[1], 2, h, D // h).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=kv_mask[:, None, None, :],
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(a.transpose(1, 2).reshape(B, L, D))


class ConvModule(nn.Module):
    def __init__(self, dim: int, kernel_size: int, dropout: float):
        super().__init__()
        self.pointwise1 = nn.Conv1d(dim, 2 * dim, 1)
        self.depthwise = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pointwise2 = nn.Conv1d(dim, dim, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = F.glu(self.pointwise1(x.transpose(1, 2)), dim=1)
        h = h.masked_fill(~mask[:, None, :], 0.0)  # padding must not leak into real frames' neighbourhoods
        h = self.norm(self.depthwise(h).transpose(1, 2))
        return self.drop(self.pointwise2(F.silu(h).transpose(1, 2)).transpose(1, 2))


class ConformerBlock(nn.Module):
    """One Conformer block (see the module docstring); `cross_attention` adds attention over a memory."""

    def __init__(self, dim: int, heads: int, ffn: int, kernel_size: int, dropout: float, cross_attention: bool = False):
        super().__init__()

        def feed_forward():
            return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, ffn), nn.SiLU(), nn.Dropout(dropout),
                                 nn.Linear(ffn, dim), nn.Dropout(dropout))

        self.ffn1, self.ffn2 = feed_forward(), feed_forward()
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads, dropout)
        self.norm_cross = nn.LayerNorm(dim) if cross_attention else None
        self.cross_attn = Attention(dim, heads, dropout) if cross_attention else None
        self.norm_conv = nn.LayerNorm(dim)
        self.conv = ConvModule(dim, kernel_size, dropout)
        self.norm_out = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, memory: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + 0.5 * self.ffn1(x)
        h = self.norm_self(x)
        x = x + self.drop(self.self_attn(h, h, mask))
        if self.cross_attn is not None:
            x = x + self.drop(self.cross_attn(self.norm_cross(x), memory, memory_mask))
        x = x + self.conv(self.norm_conv(x), mask)
        x = x + 0.5 * self.ffn2(x)
        return self.norm_out(x)


class ConformerStack(nn.Module):
    """`layers` Conformer blocks over inputs with sinusoidal positions added (x (B, L, D) -> (B, L, D))."""

    def __init__(self, layers: int, dim: int, heads: int, ffn: int, kernel_size: int, dropout: float,
                 cross_attention: bool = False):
        super().__init__()
        self.dim = dim
        self.blocks = nn.ModuleList(ConformerBlock(dim, heads, ffn, kernel_size, dropout, cross_attention)
                                    for _ in range(layers))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, memory: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.drop(x + sinusoidal(torch.arange(x.shape[1], device=x.device), self.dim))
        for block in self.blocks:
            x = block(x, mask, memory, memory_mask)
        return x
