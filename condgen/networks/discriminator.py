"""The discriminator contract: what objectives may rely on, and the layer helpers discriminators share.

A discriminator is `D(img, seg) -> outputs` (nested lists of tensors, the official order) plus
`split(outputs) -> DiscriminatorSplit(logits, features, feature_weights)`, so that the losses never look
inside a particular network: GAN loss = mean over `logits` of each map's element mean; feature matching =
sum_i w_i L1(fake_i, real_i) over `features`. Objectives call D on [fake; real] in one batch
(`discriminate`), as the official code does (shared BN statistics and spectral-norm iterations).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from condgen.blocks.norm import get_param_free_norm, spectral_norm
from condgen.ops.label_conv import cat_batch_labels
from condgen.utils import LayerType


class DiscriminatorSplit(NamedTuple):
    """What the losses need from a discriminator's nested output (see each `split`)."""

    logits: list[Tensor]  # real/fake maps, one per scale or pyramid level
    features: list[Tensor]  # features matched by the feature-matching loss
    feature_weights: list[float]  # one weight per feature, the official averaging rule


@runtime_checkable
class Discriminator(Protocol):
    """The slot `build_gan.discriminator` fills: called as `cls(semantic_nc)`."""

    semantic_nc: int

    def __call__(self, img: Tensor, seg: Tensor) -> Any: ...

    def split(self, outputs: Any) -> DiscriminatorSplit: ...


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside DDP (`.module`) and torch.compile (`._orig_mod`) wrappers."""
    while True:
        inner = getattr(module, "_orig_mod", None) or getattr(module, "module", None)
        if not isinstance(inner, nn.Module):
            return module
        module = inner


def map_tensors(obj: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """Apply `fn` to every tensor of a nested list / tuple output."""
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, (list, tuple)):
        return type(obj)(map_tensors(o, fn) for o in obj)
    raise TypeError(f"discriminator outputs must be nested lists of tensors, found {type(obj).__name__}")


def discriminate(D: nn.Module, fake: Tensor, real: Tensor, seg: Tensor) -> tuple[DiscriminatorSplit, ...]:
    """D on [fake; real] in one batch (official: shared BN statistics / SN iterations); split halves."""
    outputs = D(torch.cat([fake, real]), cat_batch_labels([seg, seg]))  # seg's label layout, if found, kept
    b = fake.shape[0]
    net = unwrap(D)
    return net.split(map_tensors(outputs, lambda t: t[:b])), net.split(map_tensors(outputs, lambda t: t[b:]))


def conv_norm_act(
    in_ch: int,
    out_ch: int,
    kernel_size: int,
    stride: int,
    padding: int,
    *,
    norm: LayerType | None = "instance",
    spectral: bool = True,
) -> nn.Sequential:
    """`[[conv, norm], LeakyReLU(0.2)]`: the official `norm_D` layer, nested to give keys `<name>.0.0.weight`.

    The conv drops its bias when a norm follows (the norm would cancel it), as the official code does.
    """
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, bias=norm is None)
    norm_layer = nn.Identity() if norm is None else get_param_free_norm(norm)(out_ch)
    # in place is safe: neither the norm's nor the conv's backward needs its own output
    return nn.Sequential(nn.Sequential(spectral_norm(conv, spectral), norm_layer), nn.LeakyReLU(0.2, True))


def check_inputs(img: Tensor, seg: Tensor, semantic_nc: int) -> None:
    """Raise with the fix when `img` / `seg` do not fit a discriminator built for `semantic_nc`."""
    if img.dim() != 4 or img.shape[1] != 3:
        raise ValueError(f"img must be (b, 3, H, W) RGB in [-1, 1], got shape {tuple(img.shape)}")
    if seg.shape[1] != semantic_nc:
        raise ValueError(
            f"label map has {seg.shape[1]} channels, discriminator expects {semantic_nc} "
            "(semantic_nc = label_nc + dontcare + instance edge); check the dataset's gin file"
        )
    if seg.shape[0] != img.shape[0] or seg.shape[-2:] != img.shape[-2:]:
        raise ValueError(
            f"img {tuple(img.shape)} and seg {tuple(seg.shape)} differ in batch or size; "
            "when fake and real are batched together, repeat seg along the batch"
        )
