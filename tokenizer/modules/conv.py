"""Length-aware padded 1-D convolutions (SEANet style) and the transposed convolution that mirrors them.

Why hand-written: a padded batch must give every item the codes it gets alone (batch invariance).
EnCodec-style convolutions pad each input with `reflect` at both ends and add "extra" right padding so
the last window is full; in a batch the right end of a short item is followed by zeros, not by its own
reflection. `pad_per_item` builds each item's padding from its own true length with one `gather`, so the
convolution sees exactly what it sees for the item alone. No library offers this.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ..utils.masking import zero_past_lengths


def conv_output_lengths(lengths: torch.Tensor, stride: int) -> torch.Tensor:
    """Frames produced by an EnCodec-style padded conv: ceil(L / stride)."""
    return torch.div(lengths + stride - 1, stride, rounding_mode="floor")


def pad_per_item(
    x: torch.Tensor, lengths: torch.Tensor | None, left: int, right: int, mode: str
) -> torch.Tensor:
    """Pad (B, C, T) by `left` and up to `right` samples past each item's own end.

    `lengths[b]` is item b's true length; the output has length `left + T + right'` where `right'`
    covers the longest item's `L + right`. `mode` is "reflect" or "zeros" (constant 0).
    """
    T = x.shape[-1]
    if lengths is None or bool((lengths == T).all()):
        if mode == "reflect":
            return F.pad(x, (left, right), mode="reflect")
        return F.pad(x, (left, right))
    total = left + max(T, int(lengths.max()) + right)
    pos = torch.arange(total, device=x.device)[None, :] - left  # (1, P) source position
    L = lengths[:, None].to(x.device)
    if mode == "reflect":
        src = torch.where(pos < 0, -pos, torch.where(pos < L, pos, 2 * (L - 1) - pos))
        src = src.clamp(0, T - 1)
        return torch.gather(x, 2, src[:, None, :].expand(x.shape[0], x.shape[1], total))
    valid = (pos >= 0) & (pos < L)
    src = pos.clamp(0, T - 1).expand(x.shape[0], total)
    out = torch.gather(x, 2, src[:, None, :].expand(x.shape[0], x.shape[1], total))
    return out * valid[:, None, :].to(x.dtype)


class PaddedConv1d(nn.Module):
    """Conv1d with EnCodec's padding rule: output length ceil(L / stride) for input length L.

    Non-causal: the padding `k_eff - stride` is split (left gets the extra sample), plus "extra" right
    padding so the last window is full. Causal: all padding on the left. Weight norm optional;
    `preserve_variance` replaces PyTorch's default init by a variance-preserving one (Kaiming, linear gain).
    forward(x (B, C_in, T), lengths (B,) | None) -> (y (B, C_out, ceil(T/stride)), lengths (B,) | None).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        causal: bool = False,
        pad_mode: str = "reflect",
        norm: bool = True,
        bias: bool = True,
        preserve_variance: bool = False,
    ):
        super().__init__()
        conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation, bias=bias)
        if preserve_variance:
            # PyTorch's default init shrinks each layer's output by about 1/sqrt(3); through a ~20-layer
            # encoder without normalisation the latent becomes its bias, nearly constant over time, and a
            # codebook trained on it collapses to one code.
            nn.init.kaiming_normal_(conv.weight, nonlinearity="linear")
            if bias:
                nn.init.zeros_(conv.bias)
        self.conv = weight_norm(conv) if norm else conv
        self.kernel = (kernel_size - 1) * dilation + 1
        self.stride = stride
        self.causal = causal
        self.pad_mode = pad_mode

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        T = x.shape[-1]
        L = lengths if lengths is not None else torch.full((x.shape[0],), T, device=x.device)
        total = self.kernel - self.stride
        out_len = conv_output_lengths(L, self.stride)
        # "extra" right padding: the longest item decides the padded length; each item reflects at its end.
        extra = int((out_len * self.stride - L).max())
        if self.causal:
            left, right = total, extra
        else:
            right_base = total // 2
            left, right = total - right_base, right_base + extra
        x = pad_per_item(x, lengths, left, right, self.pad_mode)
        n_out = int(out_len.max())
        needed = (n_out - 1) * self.stride + self.kernel
        y = self.conv(x[..., :needed])
        return y, (out_len if lengths is not None else None)


class PaddedConvTranspose1d(nn.Module):
    """Weight-normalised transposed conv with kernel 2 * stride: (B, C_in, T) -> (B, C_out, T * stride).

    Non-causal: the full output is cropped by ceil(stride / 2) on the left (as `padding=ceil(stride/2)`
    does for even strides); causal: the first T * stride samples are kept, so output t depends only on
    inputs <= t / stride. Frames past each item's length are zeroed first.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, causal: bool = False):
        super().__init__()
        self.conv = weight_norm(nn.ConvTranspose1d(in_channels, out_channels, 2 * stride, stride=stride))
        self.stride, self.causal = stride, causal

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        y = self.conv(zero_past_lengths(x, lengths))
        start = 0 if self.causal else -(-self.stride // 2)
        y = y[..., start : start + x.shape[-1] * self.stride]
        return y, (None if lengths is None else lengths * self.stride)
