"""Vocos backbone: conv embedding, ConvNeXt blocks with adaptive LayerNorm, optional self-attention.

Length-aware: every zero-padded convolution first zeroes the frames past each item's end, and attention
masks them, so a padded batch decodes each item exactly as it decodes alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..utils.masking import length_mask, zero_past_lengths


class AdaLayerNorm(nn.Module):
    """LayerNorm whose scale and shift are rows of embedding tables chosen by a condition id.

    x: (B, T, C); cond: LongTensor (B,) or int -> (B, T, C).
    """

    def __init__(self, num_embeddings: int, dim: int, eps: float = 1e-6):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.scale = nn.Embedding(num_embeddings, dim)
        self.shift = nn.Embedding(num_embeddings, dim)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x, (self.dim,), eps=self.eps)
        return x * self.scale(cond)[:, None, :] + self.shift(cond)[:, None, :]


class ConvNeXtBlock(nn.Module):
    """Depthwise conv(7) -> (Ada)LayerNorm -> Linear -> GELU -> Linear -> layer scale, residual. (B, C, T)."""

    def __init__(self, dim: int, intermediate_dim: int, layer_scale: float, adanorm_num_embeddings: int | None):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = AdaLayerNorm(adanorm_num_embeddings, dim) if adanorm_num_embeddings else nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale)) if layer_scale > 0 else None

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None, lengths: torch.Tensor | None) -> torch.Tensor:
        residual = x
        x = self.dwconv(zero_past_lengths(x, lengths)).transpose(1, 2)
        x = self.norm(x, cond) if isinstance(self.norm, AdaLayerNorm) else self.norm(x)
        x = self.pwconv2(self.act(self.pwconv1(x)))
        if self.gamma is not None:
            x = self.gamma * x
        return residual + x.transpose(1, 2)


class AttentionBlock(nn.Module):
    """Pre-norm multi-head self-attention over frames with a key padding mask. (B, C, T) -> (B, C, T)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.num_heads = num_heads

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        B, C, T = x.shape
        h = self.norm(x.transpose(1, 2))
        q, k, v = self.qkv(h).view(B, T, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        mask = None if lengths is None else length_mask(lengths, T)[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + y.transpose(1, 2)


class VocosBackbone(nn.Module):
    """Latent (B, input_channels, F) -> hidden (B, F, dim), conditioned on an id per item (B,).

    forward(x, cond, lengths): `cond` selects the AdaLayerNorm rows (bandwidth id); `lengths` (B,)
    are frame lengths or None.
    """

    def __init__(self, input_channels: int, dim: int, intermediate_dim: int, num_layers: int,
                 adanorm_num_embeddings: int | None = None, num_attention_layers: int = 0,
                 num_attention_heads: int = 6):
        super().__init__()
        self.embed = nn.Conv1d(input_channels, dim, 7, padding=3)
        self.norm = AdaLayerNorm(adanorm_num_embeddings, dim) if adanorm_num_embeddings else nn.LayerNorm(dim, eps=1e-6)
        self.attention = nn.ModuleList(AttentionBlock(dim, num_attention_heads) for _ in range(num_attention_layers))
        self.convnext = nn.ModuleList(
            ConvNeXtBlock(dim, intermediate_dim, 1.0 / num_layers, adanorm_num_embeddings) for _ in range(num_layers)
        )
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None, lengths: torch.Tensor | None = None):
        x = self.embed(zero_past_lengths(x, lengths)).transpose(1, 2)
        x = self.norm(x, cond) if isinstance(self.norm, AdaLayerNorm) else self.norm(x)
        x = x.transpose(1, 2)
        for block in self.attention:
            x = block(x, lengths)
        for block in self.convnext:
            x = block(x, cond, lengths)
        return self.final_layer_norm(x.transpose(1, 2))
