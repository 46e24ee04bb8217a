"""SPADE: spatially-adaptive denormalisation (SPADE, Sec. 3, Eq. 1), and the SPADE residual block.

`x_hat * (1 + gamma(seg)) + beta(seg)`: a parameter-free norm, then a per-pixel, per-channel affine
map predicted from the label map by a small conv net. The shared conv reads the label map label-sparse
(`condgen.ops.label_conv`: same numbers, by gathering weights by label id). Differences from the official
layer: hidden width and kernel size are arguments (official: 128 and a one-digit kernel parsed from a
string). Module names (`mlp_shared`, `conv_0/1/s`, `norm_0/1/s`) are the official ones, so checkpoints
load by key.
"""

from __future__ import annotations

from collections.abc import Callable

import gin
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condgen.blocks.norm import SyncableBatchNorm2d, get_param_free_norm, spectral_norm
from condgen.ops.label_recompute import shared_then
from condgen.registry import register
from condgen.utils import LayerType


@gin.configurable("spade_lean_backward")
def lean_backward_enabled(enabled: bool = True) -> bool:
    """Whether SPADE layers keep less for backward (gin `spade_lean_backward.enabled`; same numbers):

    - a training-mode batch norm and the modulation `x_hat * (1 + gamma) + beta` run as one autograd
      function (`_NormModulate`) that keeps x, 1 + gamma and the batch statistics; x_hat, which the plain
      ops keep besides, is recomputed in backward by the same batch-norm kernel (a cheap elementwise pass);
    - `SPADEResBlock` applies its leaky ReLUs in place on the SPADE outputs, so what they keep for backward
      is their result, the tensor the next conv keeps anyway (the sign of a leaky ReLU's input and output is
      the same, so the gradient is the same).
    """
    return enabled


class _NormModulate(torch.autograd.Function):
    """`batch_norm(x) * (1 + gamma) + beta` (training mode, no affine), keeping x, 1 + gamma, mean, invstd.

    Forward and backward call the kernels autograd would (`native_batch_norm`, its backward, the same
    multiplications), so outputs and gradients are the plain ops' to the bit on CPU.
    """

    @staticmethod
    def forward(ctx, x: Tensor, gamma: Tensor, beta: Tensor, running_mean: Tensor | None,
                running_var: Tensor | None, momentum: float, eps: float) -> Tensor:
        x_hat, mean, invstd = torch.native_batch_norm(x, None, None, running_mean, running_var, True,
                                                      momentum, eps)
        scale = 1 + gamma
        ctx.save_for_backward(x, scale, mean, invstd)
        ctx.eps = eps
        return x_hat * scale + beta

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, scale, mean, invstd = ctx.saved_tensors
        g_gamma = g_x = None
        if ctx.needs_input_grad[1]:
            x_hat = torch.native_batch_norm(x, None, None, None, None, True, 0.0, ctx.eps)[0]
            g_gamma = grad * x_hat
        if ctx.needs_input_grad[0]:
            g_x = torch.ops.aten.native_batch_norm_backward(grad * scale, x, None, None, None, mean, invstd,
                                                            True, ctx.eps, [True, False, False])[0]
        return g_x, g_gamma, grad if ctx.needs_input_grad[2] else None, None, None, None, None


def _fusable(norm: nn.Module, x: Tensor, gamma: Tensor) -> bool:
    """A plain, training-mode, param-free BatchNorm2d on fp32/fp64 input outside autocast, grad on."""
    return (type(norm) in (nn.BatchNorm2d, SyncableBatchNorm2d) and norm.training and not norm.affine
            and norm.track_running_stats and norm.momentum is not None and torch.is_grad_enabled()
            and not torch.is_autocast_enabled(x.device.type) and gamma.shape == x.shape
            and x.dtype in (torch.float32, torch.float64) and lean_backward_enabled())


@register("norm")
class SPADE(nn.Module):
    """Spatially-adaptive normalisation.

    Args:
        norm_nc: channels of the normalised activation.
        label_nc: channels of the condition map (the one-hot `seg`, or `seg` + pyramid features).
        hidden: width of the shared conv (official: 128); 0: no shared conv, gamma and beta read the
            condition map itself, which must then have x's size (DP-GAN: pyramid features, no resize).
        kernel_size: kernel of the three convs (1, 3 or 5; official default 3).
        param_free: 'batch' | 'syncbatch' | 'instance' (official generator default: 'syncbatch').
    """

    def __init__(
        self,
        norm_nc: int,
        label_nc: int,
        *,
        hidden: int = 128,
        kernel_size: int = 3,
        param_free: LayerType = "syncbatch",
    ) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 != 1:
            raise ValueError(f"SPADE kernel_size must be odd and positive (1, 3, 5, ...), got {kernel_size}")
        pad = kernel_size // 2
        self.param_free_norm = get_param_free_norm(param_free)(norm_nc)
        self.mlp_shared = None
        if hidden:
            self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, kernel_size, padding=pad), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden or label_nc, norm_nc, kernel_size, padding=pad)
        self.mlp_beta = nn.Conv2d(hidden or label_nc, norm_nc, kernel_size, padding=pad)

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        """x: (b, norm_nc, h, w); seg: (b, label_nc, H, W), resized to (h, w) with nearest."""
        # actv = mlp_shared(F.interpolate(seg, x's size, nearest)), its one-hot channels label-sparse
        # (condgen.ops.label_conv, gin `label_sparse.mode`: a gather by label id, one id map per size; actv
        # is then recomputed in backward rather than kept); gamma, beta = mlp_gamma(actv), mlp_beta(actv)
        if self.mlp_shared is None:
            if seg.shape[-2:] != x.shape[-2:]:
                raise ValueError(f"SPADE without a shared conv (hidden=0) reads a condition of x's size "
                                 f"{tuple(x.shape[-2:])}, got {tuple(seg.shape[-2:])}")
            gamma, beta = self.mlp_gamma(seg), self.mlp_beta(seg)
        else:
            gamma, beta = shared_then(*self.mlp_shared, (self.mlp_gamma, self.mlp_beta), seg, x.shape[-2:])
        norm = self.param_free_norm
        if _fusable(norm, x, gamma):  # the same numbers, x_hat not kept (`lean_backward_enabled`)
            norm.num_batches_tracked.add_(1)  # as nn.BatchNorm2d in training mode
            return _NormModulate.apply(x, gamma, beta, norm.running_mean, norm.running_var, norm.momentum,
                                       norm.eps)
        return norm(x) * (1 + gamma) + beta


@register("block")
class SPADEResBlock(nn.Module):
    """Pre-activation residual block with SPADE norms (SPADE arXiv, Fig. 11; official `SPADEResnetBlock`).

    `out = shortcut(x) + conv_1(lrelu(norm_1(conv_0(lrelu(norm_0(x, seg))), seg)))`; the shortcut is
    `conv_s(norm_s(x, seg))` (no activation) when the channel count changes, else the identity.

    Args:
        in_ch, out_ch: channels in and out; the middle width is `min(in_ch, out_ch)`.
        cond_nc: channels of the condition map every SPADE reads.
        norm: the conditional norm class, called as `norm(channels, cond_nc)`; a class (gin `@SPADE`)
            so that `SPADE.*` bindings reach every norm, or a `partial` of one.
        spectral: spectral norm on conv_0, conv_1 and conv_s (official `norm_G` prefix `spectral`).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        cond_nc: int,
        *,
        norm: Callable[..., nn.Module] = SPADE,
        spectral: bool = True,
    ) -> None:
        super().__init__()
        mid_ch = min(in_ch, out_ch)
        self.learned_shortcut = in_ch != out_ch
        norm_0, norm_1 = norm(in_ch, cond_nc), norm(mid_ch, cond_nc)
        # a norm may append channels of its own (CLADE's instance-edge feature): the next conv reads them
        extra = getattr(norm_0, "extra_channels", 0)
        self.conv_0 = spectral_norm(nn.Conv2d(in_ch + extra, mid_ch, 3, padding=1), spectral)
        self.conv_1 = spectral_norm(nn.Conv2d(mid_ch + extra, out_ch, 3, padding=1), spectral)
        self.norm_0, self.norm_1 = norm_0, norm_1
        if self.learned_shortcut:
            norm_s = norm(in_ch, cond_nc)
            self.conv_s = spectral_norm(nn.Conv2d(in_ch + extra, out_ch, 1, bias=False), spectral)
            self.norm_s = norm_s

    def shortcut(self, x: Tensor, seg: Tensor) -> Tensor:
        return self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        """x: (b, in_ch, h, w); seg: (b, cond_nc, H, W), resized by each SPADE. Returns (b, out_ch, h, w)."""
        inplace = lean_backward_enabled()  # a SPADE output is used once: the ReLU keeps its result instead
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2, inplace=inplace))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2, inplace=inplace))
        return self.shortcut(x, seg) + dx
