"""RWKV-4 blocks in plain PyTorch: time mixing with a chunked parallel form (training, long inputs) and a
recurrent form (streaming, one frame at a time); both give the same numbers (tests: to 1e-5).

Time mixing (Peng et al. 2023, RWKV-4), per channel, unidirectional:
    wkv_t = (sum_{i<t} e^{(t-1-i) w + k_i} v_i + e^{u + k_t} v_t) / (sum_{i<t} e^{(t-1-i) w + k_i} + e^{u + k_t})
with decay w = -exp(time_decay) < 0 and bonus u = time_first; out = W_o (sigmoid(r_t) * wkv_t). Inputs of
r, k, v are token-shifted: a per-channel mix of x_t and x_{t-1}.

Numerics: the state is kept as (a, b, p) with numerator = a e^p and denominator = b e^p, p the running
maximum exponent, so no exp() ever overflows. The chunked form evaluates all (t, i) pairs inside a chunk of
`chunk_size` frames in log space with the same max subtraction, and carries (a, b, p) from chunk to chunk:
cost O(T * chunk_size * C), linear in the sequence length.

Why hand-written: the reference RWKV kernels are CUDA; the pip packages are language models, not blocks.
Layout: (B, T, C) like nn.Linear; states are `RWKVState` objects of (B, C) tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

NEG = -1e30
"""Exponent standing for log(0): finite, so masked terms get exact zero weight and zero gradient."""


@dataclass
class WKVState:
    """Running sums of the WKV recurrence: numerator a * e^p, denominator b * e^p (each (B, C))."""

    a: torch.Tensor
    b: torch.Tensor
    p: torch.Tensor

    @classmethod
    def zeros(cls, batch: int, channels: int, like: torch.Tensor) -> "WKVState":
        z = like.new_zeros(batch, channels)
        return cls(z, z.clone(), torch.full_like(z, NEG))


def wkv_recurrent(w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                  state: WKVState | None = None) -> tuple[torch.Tensor, WKVState]:
    """Frame-by-frame WKV. w, u (C,); k, v (B, T, C) -> wkv (B, T, C) and the state after the last frame."""
    B, T, C = k.shape
    s = state or WKVState.zeros(B, C, k)
    a, b, p = s.a, s.b, s.p
    out = []
    for t in range(T):
        kt, vt = k[:, t], v[:, t]
        ww = u + kt
        q = torch.maximum(p, ww)
        e1, e2 = torch.exp(p - q), torch.exp(ww - q)
        out.append((e1 * a + e2 * vt) / (e1 * b + e2))
        ww = p + w
        q = torch.maximum(ww, kt)
        e1, e2 = torch.exp(ww - q), torch.exp(kt - q)
        a, b, p = e1 * a + e2 * vt, e1 * b + e2, q
    return torch.stack(out, 1), WKVState(a, b, p)


def wkv_chunked(w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                state: WKVState | None = None, chunk_size: int = 32) -> tuple[torch.Tensor, WKVState]:
    """Chunk-parallel WKV, equal to `wkv_recurrent`. Same shapes; `chunk_size` frames per step."""
    B, T, C = k.shape
    s = state or WKVState.zeros(B, C, k)
    a, b, p = s.a, s.b, s.p
    out = []
    for start in range(0, T, chunk_size):
        kc, vc = k[:, start : start + chunk_size], v[:, start : start + chunk_size]
        L = kc.shape[1]
        j = torch.arange(L, device=k.device, dtype=k.dtype)
        lag = j[:, None] - 1 - j[None, :]  # (L, L): t - 1 - i for query t, key i
        # exponent of key i's weight at query t: (t-1-i) w + k_i for i < t, u + k_t for i = t, none for i > t
        expo = lag[None, :, :, None] * w + kc[:, None, :, :]  # (B, L, L, C)
        diag = torch.eye(L, dtype=torch.bool, device=k.device)[None, :, :, None]
        expo = torch.where(diag, (u + kc)[:, :, None, :], expo)
        expo = expo.masked_fill((lag < -1)[None, :, :, None], NEG)
        carried = p[:, None, :] + j[None, :, None] * w  # (B, L, C): the state's weight at query t
        m = torch.maximum(expo.amax(2), carried)
        ek = torch.exp(expo - m[:, :, None, :])
        ec = torch.exp(carried - m)
        num = (ek * vc[:, None, :, :]).sum(2) + ec * a[:, None, :]
        den = ek.sum(2) + ec * b[:, None, :]
        out.append(num / den)
        # state after the chunk: keys weighted by (L-1-i) decays, the old state by L decays
        gk = (L - 1 - j)[None, :, None] * w + kc  # (B, L, C)
        gc = p + L * w
        q = torch.maximum(gk.amax(1), gc)
        egk, egc = torch.exp(gk - q[:, None, :]), torch.exp(gc - q)
        a = (egk * vc).sum(1) + egc * a
        b = egk.sum(1) + egc * b
        p = q
    return torch.cat(out, 1), WKVState(a, b, p)


def token_shift(x: torch.Tensor, last: torch.Tensor | None) -> torch.Tensor:
    """x (B, T, C) -> x delayed by one frame; frame 0 gets `last` (the previous call's final frame) or 0."""
    first = x.new_zeros(x.shape[0], 1, x.shape[2]) if last is None else last[:, None, :]
    return torch.cat([first, x[:, :-1]], 1)


class RWKVTimeMix(nn.Module):
    """RWKV-4 time mixing. forward(x (B, T, C), state) -> (y (B, T, C), state); state = (last x, WKVState)."""

    def __init__(self, dim: int, layer_id: int = 0, num_layers: int = 1, chunk_size: int = 32):
        super().__init__()
        self.chunk_size = chunk_size
        ratio = layer_id / max(num_layers - 1, 1)
        h = torch.arange(dim, dtype=torch.float32) / max(dim - 1, 1)
        # RWKV-4 initialisation: decays spread from slow (-5 -> w = -0.007) to fast (3 -> w = -20) per channel.
        self.time_decay = nn.Parameter(-5 + 8 * h ** (0.7 + 1.3 * ratio))
        zigzag = ((torch.arange(dim) + 1) % 3 - 1).float() * 0.5
        self.time_first = nn.Parameter(torch.full((dim,), -1.2) + zigzag)
        self.mix_k = nn.Parameter(h ** (1.0 - 0.5 * ratio))
        self.mix_v = nn.Parameter(h ** (1.0 - 0.5 * ratio) + 0.3 * ratio)
        self.mix_r = nn.Parameter(h ** (0.5 - 0.25 * ratio))
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)
        self.receptance = nn.Linear(dim, dim, bias=False)
        self.output = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, state: tuple | None = None, recurrent: bool = False):
        last, wkv_state = state if state is not None else (None, None)
        xx = token_shift(x, last)
        k = self.key(x * self.mix_k + xx * (1 - self.mix_k))
        v = self.value(x * self.mix_v + xx * (1 - self.mix_v))
        r = self.receptance(x * self.mix_r + xx * (1 - self.mix_r))
        w = -torch.exp(self.time_decay)
        if recurrent:
            wkv, wkv_state = wkv_recurrent(w, self.time_first, k, v, wkv_state)
        else:
            wkv, wkv_state = wkv_chunked(w, self.time_first, k, v, wkv_state, self.chunk_size)
        return self.output(torch.sigmoid(r) * wkv), (x[:, -1], wkv_state)


class RWKVChannelMix(nn.Module):
    """RWKV-4 channel mixing: sigmoid(W_r x_r) * W_v relu(W_k x_k)^2, token-shifted inputs.
    forward(x (B, T, C), last (B, C) | None) -> (y (B, T, C), last)."""

    def __init__(self, dim: int, hidden_mult: int = 4, layer_id: int = 0, num_layers: int = 1):
        super().__init__()
        ratio = layer_id / max(num_layers - 1, 1)
        h = torch.arange(dim, dtype=torch.float32) / max(dim - 1, 1)
        self.mix_k = nn.Parameter(h ** (1.0 - 0.5 * ratio))
        self.mix_r = nn.Parameter(h ** (1.0 - 0.5 * ratio))
        self.key = nn.Linear(dim, hidden_mult * dim, bias=False)
        self.value = nn.Linear(hidden_mult * dim, dim, bias=False)
        self.receptance = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, last: torch.Tensor | None = None):
        xx = token_shift(x, last)
        k = torch.relu(self.key(x * self.mix_k + xx * (1 - self.mix_k))).square()
        r = torch.sigmoid(self.receptance(x * self.mix_r + xx * (1 - self.mix_r)))
        return r * self.value(k), x[:, -1]


@dataclass
class RWKVState:
    """Streaming state of one `RWKVBlock`: the time mix's (last input, WKV sums) and the channel mix's last input."""

    time_mix: tuple
    channel_mix: torch.Tensor


class RWKVBlock(nn.Module):
    """Pre-norm RWKV-4 block: x + TimeMix(LN(x)), then + ChannelMix(LN(x)).

    forward(x (B, T, C), state=None, recurrent=False) -> (y (B, T, C), RWKVState). Unidirectional: frame t
    depends on frames <= t only, so padding after an item never changes its frames, and feeding a
    sequence in pieces with the returned state equals feeding it at once.
    """

    def __init__(self, dim: int, layer_id: int = 0, num_layers: int = 1, chunk_size: int = 32, hidden_mult: int = 4):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.ln2 = nn.LayerNorm(dim)
        self.att = RWKVTimeMix(dim, layer_id, num_layers, chunk_size)
        self.ffn = RWKVChannelMix(dim, hidden_mult, layer_id, num_layers)

    def forward(self, x: torch.Tensor, state: RWKVState | None = None, recurrent: bool = False):
        att, att_state = self.att(self.ln1(x), None if state is None else state.time_mix, recurrent)
        x = x + att
        ffn, ffn_state = self.ffn(self.ln2(x), None if state is None else state.channel_mix)
        return x + ffn, RWKVState(att_state, ffn_state)
