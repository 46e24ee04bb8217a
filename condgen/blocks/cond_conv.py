"""The CC block: conditional depthwise convolutions + conditional attention (CC-FPSE, Sec. 3.1, Fig. 2 left).

Each of the two convolutions is factorised as a conditional depthwise conv with per-pixel kernels predicted
from the condition map, then a pointwise 1x1 conv whose output is gated by predicted sigmoid maps (the
"conditional attention"). Official name: `DepthsepCCBlock`; module names are the official ones, so
checkpoints load without renames. Deviations: the conditional conv uses the lean op
(`condgen.ops.cond_depthwise`); `gen_weights2` predicts min(in, out)*k*k kernels (official: out*k*k, the
same number whenever in >= out, which holds for every official block); the three BatchNorms the official
block builds but never uses are kept frozen behind `official_unused_bn` (see `CCResBlock`); `checkpoint_heads`
recomputes the predicted kernels and gates in backward instead of keeping them (activation checkpointing).
The heads' first convs read the label channels of the condition label-sparse (`condgen.ops.label_conv`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from condgen.blocks.norm import batch_norm, spectral_norm
from condgen.blocks.spade import SPADE
from condgen.ops.cond_depthwise import cond_depthwise_conv2d
from condgen.ops.label_conv import conv_labels, label_layout
from condgen.registry import register


def unused_batch_norm(num_features: int) -> nn.BatchNorm2d:
    """An affine BN the official block builds but never calls: frozen, so DDP and optimisers skip it.

    It exists only so official checkpoints load strictly and parameter counts equal the official ones.
    """
    bn = batch_norm(num_features)
    bn.requires_grad_(False)
    return bn


def run_head(head: nn.Sequential, cond: Tensor, size: tuple[int, int]) -> Tensor:
    """`head(F.interpolate(cond, size, mode='nearest'))`; its first conv reads the label channels sparse."""
    out = conv_labels(head[0], cond, size)
    for layer in list(head)[1:]:
        out = layer(out)
    return out


def prediction_head(cond_nc: int, hidden: int, out_ch: int, *, gate: bool = False) -> nn.Sequential:
    """conv3x3(cond_nc -> hidden) + ReLU + conv3x3(hidden -> out_ch) [+ sigmoid when `gate`].

    Predicts depthwise kernels (`gate=False`, out_ch = C*k*k) or attention gates (`gate=True`).
    Indices 0 and 2 are the official checkpoint keys.
    """
    layers = [nn.Conv2d(cond_nc, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, out_ch, 3, padding=1)]
    return nn.Sequential(*layers, *([nn.Sigmoid()] if gate else []))


class CondDepthwiseConv(nn.Module):
    """Applies predicted per-pixel depthwise kernels (official `DepthConv`); parameter-free.

    Args:
        channels: channels of x.
        kernel_size: k of the predicted kernels.
        impl: op implementation ('lean' | 'reference'); None: the gin-bound `cond_depthwise_conv2d.impl`.
        official_unused_bn: keep the official's never-used `norm_layer` BN (frozen) for strict loading.
    """

    def __init__(
        self, channels: int, *, kernel_size: int = 3, impl: str | None = None, official_unused_bn: bool = True
    ) -> None:
        super().__init__()
        self.channels, self.kernel_size, self.impl = channels, kernel_size, impl
        if official_unused_bn:
            self.norm_layer = unused_batch_norm(channels)

    def forward(self, x: Tensor, kernels: Tensor) -> Tensor:
        """x: (b, C, h, w); kernels: (b, C*k*k, h, w), index c*k*k + tap. Returns (b, C, h, w)."""
        impl = {} if self.impl is None else {"impl": self.impl}  # leave the choice to gin when unset
        return cond_depthwise_conv2d(x, kernels, self.kernel_size, **impl)

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.kernel_size}, impl={self.impl}"


@register("block")
class CCResBlock(nn.Module):
    """Conditional-convolution residual block (CC-FPSE Fig. 2 left; official `DepthsepCCBlock`).

    `dx = lrelu(conv_1(CDW(norm_1(x), W1)) * A1)`, `dx = lrelu(conv_3(CDW(norm_2(dx), W2)) * A2)`,
    `out = shortcut(x) + dx`, where W1, W2 (kernels) and A1, A2 (sigmoid gates) are predicted from the
    condition map and the shortcut is `conv_s(SPADE(x))` when in_ch != out_ch, else identity.

    Args:
        cond_nc: channels of the condition map (`seg`, or `seg` + pyramid features).
        hidden: width of the four prediction heads (official 128).
        kernel_size: size of the predicted depthwise kernels (official 3).
        spectral: spectral norm on the shortcut conv (official: always).
        official_unused_bn: build the three BatchNorms that the official block has but never uses
            (`conv_0.norm_layer`, `norm_0`, `conv_2.norm_layer`) with `requires_grad=False`, so official
            checkpoints load strictly and parameter counts match; DDP and optimisers ignore them.
        impl: conditional depthwise conv implementation; None: the gin default (`'lean'`).
        shortcut_norm: the learned shortcut's conditional norm, called as `norm(in_ch, cond_nc)`; None is
            the official SPADE (BN-based, hidden 128, 3x3). `@CLADE` crosses in CLADE's class-adaptive norm
            (its instance-edge channel, if any, is read by conv_s).
        checkpoint_heads: do not keep the four heads' outputs and hidden maps for backward (the kernels
            alone are 9x the block's features); recompute them there. Same results; less activation
            memory for more time (benchmarks/RESULTS.md). Only the parameter-free ops that consume
            them are recomputed with the heads, never a BatchNorm or spectral norm (no state advances twice).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        cond_nc: int,
        *,
        hidden: int = 128,
        kernel_size: int = 3,
        spectral: bool = True,
        official_unused_bn: bool = True,
        impl: str | None = None,
        checkpoint_heads: bool = False,
        shortcut_norm: Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__()
        mid, k2 = min(in_ch, out_ch), kernel_size**2
        self.cond_nc, self.checkpoint_heads = cond_nc, checkpoint_heads
        self.learned_shortcut = in_ch != out_ch
        self.gen_weights1 = prediction_head(cond_nc, hidden, in_ch * k2)
        self.gen_weights2 = prediction_head(cond_nc, hidden, mid * k2)
        self.gen_se_weights1 = prediction_head(cond_nc, hidden, mid, gate=True)
        self.gen_se_weights2 = prediction_head(cond_nc, hidden, out_ch, gate=True)
        cdw = dict(kernel_size=kernel_size, impl=impl, official_unused_bn=official_unused_bn)
        self.conv_0 = CondDepthwiseConv(in_ch, **cdw)
        self.conv_1 = nn.Conv2d(in_ch, mid, 1)
        self.conv_2 = CondDepthwiseConv(mid, **cdw)
        self.conv_3 = nn.Conv2d(mid, out_ch, 1)
        self.norm_1 = batch_norm(in_ch)
        self.norm_2 = batch_norm(mid)
        if official_unused_bn:
            self.norm_0 = unused_batch_norm(mid)
        if self.learned_shortcut:
            # The official shortcut norm is always BN-based SPADE (hidden 128, 3x3), whatever norm_G says.
            norm_s = (shortcut_norm or partial(SPADE, param_free="syncbatch"))(in_ch, cond_nc)
            extra = getattr(norm_s, "extra_channels", 0)
            self.conv_s = spectral_norm(nn.Conv2d(in_ch + extra, out_ch, 1, bias=False), spectral)
            self.norm_s = norm_s

    def shortcut(self, x: Tensor, cond: Tensor) -> Tensor:
        return self.conv_s(self.norm_s(x, cond)) if self.learned_shortcut else x

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """x: (b, in_ch, h, w); cond: (b, cond_nc, H, W), nearest-resized to (h, w). -> (b, out_ch, h, w)"""
        if cond.shape[1] != self.cond_nc:
            raise ValueError(
                f"CCResBlock built for {self.cond_nc} condition channels got {cond.shape[1]}; the generator "
                "passes its condition source's cond_nc (labels, + pyramid width with FeaturePyramidCondition)"
            )
        if cond.shape[-2:] != x.shape[-2:] and label_layout(cond) is None:  # label-sparse: resized per conv
            cond = F.interpolate(cond, size=x.shape[-2:], mode="nearest")
        x_s = self.shortcut(x, cond)
        run = self._checkpointed if self.checkpoint_heads and torch.is_grad_enabled() else self._direct
        dx = run(self._cond_conv, self.norm_1(x), cond, self.conv_0, self.gen_weights1)
        dx = F.leaky_relu(run(self._gate, self.conv_1(dx), cond, self.gen_se_weights1), 0.2)
        dx = run(self._cond_conv, self.norm_2(dx), cond, self.conv_2, self.gen_weights2)
        dx = F.leaky_relu(run(self._gate, self.conv_3(dx), cond, self.gen_se_weights2), 0.2)
        return x_s + dx

    @staticmethod
    def _cond_conv(x: Tensor, cond: Tensor, conv: nn.Module, head: nn.Module) -> Tensor:
        return conv(x, run_head(head, cond, x.shape[-2:]))

    @staticmethod
    def _gate(x: Tensor, cond: Tensor, head: nn.Module) -> Tensor:
        return x * run_head(head, cond, x.shape[-2:])

    @staticmethod
    def _direct(fn, *args):
        return fn(*args)

    @staticmethod
    def _checkpointed(fn, *args):
        # Keeps only x and cond; backward re-runs the head (plain convs, ReLU, sigmoid) and its consumer.
        return checkpoint(fn, *args, use_reentrant=False)
