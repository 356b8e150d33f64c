"""Incremental decoding of the AR's Llama backbone with a preallocated key/value cache.

Why hand-written: transformers' generic forward costs far more than the arithmetic of one decoding step on
a CPU. Each call rebuilds the causal mask, re-enters the output-capturing decorators and grows a
`DynamicCache` by concatenation (every layer's keys and values copied at every step), and the `small`
AR spent ~28 ms per step for ~50 MFLOP of work (issue 28). This module runs the same modules (the
backbone's own projection weights, norm weights and rotary table, with the norms and the SiLU MLP written
out as the same functional calls, so the weights and numerics are transformers')
through a loop that writes each step's keys and values in place into buffers allocated once, and attends
with `scaled_dot_product_attention` over the filled part.

Contract: `StaticCacheDecoder(backbone, batch, capacity)`; `prefill(x, mask, positions)` with left-padded
(B, L0, D) inputs, their (B, L0) validity mask and position ids -> last hidden state (B, D) (the final norm
applied, like `last_hidden_state[:, -1]`); then `step(x, positions)` with (B, 1, D) -> (B, D), any number of
times up to `capacity` positions in all. Attention is causal; a key at a padded position is never attended,
and every position may attend to itself, so rows of padding never see an empty set (no NaN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def _linear(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`module(x)` without the module-call machinery for a plain nn.Linear (a quantized one is called)."""
    weight = module.weight
    return F.linear(x, weight, module.bias) if isinstance(weight, torch.Tensor) else module(x)


class StaticCacheDecoder:
    """See the module docstring. backbone: a transformers `LlamaModel` (eval mode)."""

    def __init__(self, backbone: nn.Module, batch: int, capacity: int):
        cfg = backbone.config
        self.backbone, self.capacity = backbone, capacity
        self.layers = list(backbone.layers[: cfg.num_hidden_layers])
        attn = self.layers[0].self_attn
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim, self.scale = attn.head_dim, attn.scaling
        p = next(backbone.parameters())
        shape = (len(self.layers), batch, self.kv_heads, capacity, self.head_dim)
        self.keys = torch.zeros(shape, dtype=p.dtype, device=p.device)
        self.values = torch.zeros(shape, dtype=p.dtype, device=p.device)
        self.valid = torch.zeros(batch, capacity, dtype=torch.bool, device=p.device)
        self.length = 0
        self.silu_mlp = cfg.hidden_act == "silu"

    def _layers(self, h: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Run every layer on h (B, T, D) at cache slots [length, length + T); mask: (B, 1, T, length + T)."""
        B, T, _ = h.shape
        start, end = self.length, self.length + T
        if end > self.capacity:
            raise ValueError(f"static cache full: {end} positions > capacity {self.capacity}")
        cos, sin = self.backbone.rotary_emb(h, position_ids=positions)
        cos, sin = cos[:, None], sin[:, None]
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            x = self._norm(layer.input_layernorm, h)
            q = _linear(attn.q_proj, x).view(B, T, self.heads, self.head_dim).transpose(1, 2)
            k = _linear(attn.k_proj, x).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
            v = _linear(attn.v_proj, x).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            self.keys[i, :, :, start:end] = k
            self.values[i, :, :, start:end] = v
            keys, values = self.keys[i, :, :, :end], self.values[i, :, :, :end]
            if self.kv_heads != self.heads:
                keys = keys.repeat_interleave(self.heads // self.kv_heads, dim=1)
                values = values.repeat_interleave(self.heads // self.kv_heads, dim=1)
            o = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=self.scale)
            h = h + _linear(attn.o_proj, o.transpose(1, 2).reshape(B, T, -1))
            x = self._norm(layer.post_attention_layernorm, h)
            if self.silu_mlp:
                mlp = layer.mlp
                h = h + _linear(mlp.down_proj, F.silu(_linear(mlp.gate_proj, x)) * _linear(mlp.up_proj, x))
            else:
                h = h + layer.mlp(x)
        self.length = end
        return self._norm(self.backbone.norm, h[:, -1])

    @staticmethod
    def _norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """transformers' LlamaRMSNorm through `F.rms_norm` (the same result, one kernel call)."""
        return F.rms_norm(x, x.shape[-1:], norm.weight, norm.variance_epsilon)

    @torch.no_grad()
    def prefill(self, x: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x (B, L0, D), mask (B, L0) nonzero on real positions, positions (B, L0) -> hidden (B, D)."""
        if self.length:
            raise ValueError("prefill of a decoder that already holds positions")
        B, L0, _ = x.shape
        self.valid[:, :L0] = mask.bool()
        causal = torch.ones(L0, L0, dtype=torch.bool, device=x.device).tril()
        allowed = causal[None] & self.valid[:, None, :L0]
        allowed |= torch.eye(L0, dtype=torch.bool, device=x.device)[None]
        return self._layers(x, positions, allowed[:, None])

    @torch.no_grad()
    def step(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x (B, 1, D) of one new position per item, positions (B, 1) -> hidden (B, D)."""
        if self.length >= self.capacity:
            raise ValueError(f"static cache full: {self.length + 1} positions > capacity {self.capacity}")
        self.valid[:, self.length] = True
        return self._layers(x, positions, self.valid[:, None, None, : self.length + 1])
