"""Pre-norm transformer block with RoPE, QK-norm, LayerScale, a gated SiLU feed-forward and sliding-window
self-attention that is correct without FlashAttention and linear in memory.

Shapes: hidden states x (B, T, C); `lengths` LongTensor (B,) valid steps per item (None: all T).

Why hand-written: PyTorch's `scaled_dot_product_attention` has no sliding-window argument, and the usual
fallback (a dense (T, T) band mask) costs O(T^2) memory; FlashAttention's `window_size` needs a GPU. A
known failure of other implementations is a CPU fallback that silently drops the window and attends to
the whole sequence. `local_attention` computes exactly the windowed attention with queries in blocks of
`W` steps that see only the neighbouring key blocks, so memory is O(T * W). Keys past each item's length
are masked, so a padded batch gives every item the output it gets alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..utils.masking import length_mask

Window = tuple[int, int]


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: Window | None = None,
                    lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Reference attention with an explicit (T, T) mask: O(T^2) memory, used for short inputs and tests.

    q, k, v: (B, H, T, D). window (left, right): query t sees keys [t - left, t + right]; None: all keys.
    """
    T = q.shape[-2]
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    allowed = torch.ones(T, T, dtype=torch.bool, device=q.device)
    if window is not None:
        rel = torch.arange(T, device=q.device)[None, :] - torch.arange(T, device=q.device)[:, None]
        allowed = (rel >= -window[0]) & (rel <= window[1])
    valid = None if lengths is None or bool((lengths >= T).all()) else length_mask(lengths.to(q.device), T)
    allowed = allowed[None, None] if valid is None else allowed[None, None] & valid[:, None, None, :]
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    return scores.softmax(-1) @ v


def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: Window,
                    lengths: torch.Tensor | None = None, block_size: int | None = None) -> torch.Tensor:
    """Exact sliding-window attention in O(T * window) memory.

    q, k, v: (B, H, T, D); window (left, right) >= 0: query t attends keys [t - left, t + right] that lie
    inside [0, lengths[b]). Queries are split into blocks of W = `block_size` (default max(left, right));
    block i attends the key blocks i - ceil(left / W) ... i + ceil(right / W), and a band mask that is
    the same for every block keeps exactly the window. Returns (B, H, T, D).
    """
    left, right = int(window[0]), int(window[1])
    B, H, T, D = q.shape
    W = max(1, block_size or max(left, right))
    nl, nr = -(-left // W), -(-right // W)
    nb = -(-T // W)
    pad = nb * W - T
    q = F.pad(q, (0, 0, 0, pad)).view(B, H, nb, W, D) / math.sqrt(D)
    span = (nl + 1 + nr) * W
    # unfold gives strided views (B, H, nb, D, span) without copying every key block
    kb = F.pad(k, (0, 0, nl * W, pad + nr * W)).unfold(2, span, W)
    vb = F.pad(v, (0, 0, nl * W, pad + nr * W)).unfold(2, span, W)
    scores = q @ kb  # (B, H, nb, W, span)
    rel = torch.arange(span, device=q.device)[None, :] - nl * W - torch.arange(W, device=q.device)[:, None]
    allowed = ((rel >= -left) & (rel <= right))[None, None, None]  # (1, 1, 1, W, span)
    key_pos = torch.arange(nb, device=q.device)[:, None] * W - nl * W + torch.arange(span, device=q.device)[None, :]
    limit = torch.full((B,), T, device=q.device) if lengths is None else lengths.to(q.device).clamp(max=T)
    valid = (key_pos[None] >= 0) & (key_pos[None] < limit[:, None, None])  # (B, nb, span)
    allowed = allowed & valid[:, None, :, None, :]
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    out = scores.softmax(-1) @ vb.transpose(-1, -2)  # (B, H, nb, W, D)
    return out.reshape(B, H, nb * W, D)[:, :, :T]


class RotaryEmbedding(nn.Module):
    """Rotary position embedding on the first `dim` channels of each head ("rotate half" layout).

    inv_freq[i] = base^(-2i / dim), i < dim / 2; channel j < dim / 2 pairs with channel j + dim / 2.
    """

    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"rotary dim must be even, got {dim}")
        self.dim, self.base = dim, base

    def inv_freq(self, device=None) -> torch.Tensor:
        # computed, not a buffer: transformers' from_pretrained leaves non-persistent buffers uninitialised
        return 1.0 / (self.base ** (torch.arange(0, self.dim, 2, device=device).float() / self.dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, H, T, D >= dim) -> same shape, positions 0..T-1."""
        T = x.shape[-2]
        freqs = torch.outer(torch.arange(T, device=x.device, dtype=torch.float32), self.inv_freq(x.device))
        freqs = torch.cat((freqs, freqs), dim=-1)
        rot, rest = x[..., : self.dim].float(), x[..., self.dim :]
        x1, x2 = rot.chunk(2, dim=-1)
        rotated = rot * freqs.cos() + torch.cat((-x2, x1), dim=-1) * freqs.sin()
        return torch.cat((rotated.to(x.dtype), rest), dim=-1)


class SelfAttention(nn.Module):
    """Multi-head self-attention: fused bias-free QKV projection, per-head LayerNorm on q and k (QK-norm),
    RoPE, sliding-window (or full, `window=None`) attention, bias-free output projection."""

    def __init__(self, dim: int, head_dim: int = 128, window: Window | None = (63, 64), qk_norm_eps: float = 1e-6,
                 rope_dim: int | None = None, rope_base: float = 10000.0):
        super().__init__()
        head_dim = min(head_dim, dim)
        if dim % head_dim:
            raise ValueError(f"width {dim} is not a multiple of the head size {head_dim}")
        self.num_heads, self.head_dim = dim // head_dim, head_dim
        self.window = None if window is None else (int(window[0]), int(window[1]))
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)
        self.q_norm = nn.LayerNorm(head_dim, eps=qk_norm_eps)
        self.k_norm = nn.LayerNorm(head_dim, eps=qk_norm_eps)
        self.rope = RotaryEmbedding(rope_dim or head_dim // 2, rope_base)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.to_qkv(x).view(B, T, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = self.rope(self.q_norm(q)), self.rope(self.k_norm(k))
        if self.window is None:
            out = dense_attention(q, k, v, None, lengths)
        else:
            out = local_attention(q, k, v, self.window, lengths)
        return self.to_out(out.transpose(1, 2).reshape(B, T, C))


class GatedFeedForward(nn.Module):
    """Linear(dim -> 2 * mult * dim) split into (value, gate), value * SiLU(gate), Linear back to dim."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * mult * dim)
        self.out = nn.Linear(mult * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return self.out(value * F.silu(gate))


class LayerScale(nn.Module):
    """Per-channel learned scale of a residual branch (CaiT), initialised small so blocks start near identity."""

    def __init__(self, dim: int, init: float = 1e-5):
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class TransformerBlock(nn.Module):
    """x + LS(attn(LN(x))), then x + LS(ff(LN(x))). LayerNorm eps defaults to 1e-2 so near-silent inputs
    are not blown up to unit variance. forward(x (B, T, C), lengths (B,) | None) -> (B, T, C)."""

    def __init__(self, dim: int, head_dim: int = 128, window: Window | None = (63, 64), ff_mult: int = 4,
                 norm_eps: float = 1e-2, qk_norm_eps: float = 1e-6, layer_scale_init: float = 1e-5,
                 rope_base: float = 10000.0):
        super().__init__()
        self.pre_norm = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = SelfAttention(dim, head_dim, window, qk_norm_eps, rope_base=rope_base)
        self.attn_scale = LayerScale(dim, layer_scale_init)
        self.ff_norm = nn.LayerNorm(dim, eps=norm_eps)
        self.ff = GatedFeedForward(dim, ff_mult)
        self.ff_scale = LayerScale(dim, layer_scale_init)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn_scale(self.attn(self.pre_norm(x), lengths))
        return x + self.ff_scale(self.ff(self.ff_norm(x)))


class Transformer(nn.Module):
    """A chain of `depth` TransformerBlocks of width `dim` (keyword arguments as for TransformerBlock)."""

    def __init__(self, dim: int, depth: int, **block_kwargs):
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(dim, **block_kwargs) for _ in range(depth))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is not None and bool((lengths >= x.shape[1]).all()):
            lengths = None
        for block in self.blocks:
            x = block(x, lengths)
        return x
