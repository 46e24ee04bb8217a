"""Multi-scale PatchGAN discriminator (pix2pixHD / SPADE Sec. 4 and appendix; "MsPatch" in CC-FPSE Table 2).

`num_D` identical 4x4-conv PatchGANs see the input at full size, then average-pooled by 2 per scale; each
returns every intermediate feature and its patch logits last, so `D(img, seg)` is a list over scales of
lists (the official nested order). `semantic_embedding=True` gives "MsPatch+SE": the scales see only the
image and the label map enters through a projection head (`blocks/semantic_embedding.py`) added to each
scale's logits.

The losses are D-agnostic through `split(outputs) -> DiscriminatorSplit(logits, features, feature_weights)`:
GAN loss = mean over `logits` of each map's element mean; feature matching = sum_i w_i L1(fake_i, real_i)
over `features` (the trainer multiplies by lambda_feat). Here the features are the intermediate outputs of
every scale (the logits excluded) with weight 1/num_D each, summed over layers, as the official SPADE loss.
Deviations from the official code: the structure never depends on a loss flag, and the last scale's input is
not pooled once more (the official pools it and throws it away).
"""

from __future__ import annotations

from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor, nn

from condgen.blocks.norm import get_param_free_norm, spectral_norm
from condgen.blocks.semantic_embedding import SemanticEmbedding
from condgen.networks.init import init_weights
from condgen.ops.label_conv import cat_labels, conv_labels
from condgen.registry import register
from condgen.utils import LayerType

# Module names equal the official ones: only the spectral-norm suffixes change (rename_official does that).
OFFICIAL_RENAMES: dict[str, str | None] = {}

MAX_CH = 512  # the official channel cap `min(nf * 2, 512)`, independent of ndf
KW, PADW = 4, 2  # official kernel 4 and padding ceil((4 - 1) / 2) = 2: every layer grows the map by 1 pixel


class DiscriminatorSplit(NamedTuple):
    """What the losses need from a discriminator's nested output (see each `split`)."""

    logits: list[Tensor]  # real/fake maps, one per scale or pyramid level
    features: list[Tensor]  # features matched by the feature-matching loss
    feature_weights: list[float]  # one weight per feature, the official averaging rule


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


class PatchDiscriminator(nn.Module):
    """One PatchGAN scale (official `NLayerDiscriminator`): `model0 .. model{n_layers}`, logits last.

    Args:
        in_ch: input channels (semantic_nc + 3 with the label map concatenated, 3 with semantic_nc given).
        n_layers: stride-2 convs before the logits, the last of them with stride 1 (official since c0d50e6).
        semantic_nc: if given, add a semantic-embedding score for this many label channels to the logits.
        embed_nc: width of that embedding.
    """

    def __init__(
        self,
        in_ch: int,
        *,
        ndf: int = 64,
        n_layers: int = 4,
        norm: LayerType | None = "instance",
        spectral: bool = True,
        semantic_nc: int | None = None,
        embed_nc: int = 128,
    ) -> None:
        super().__init__()
        self.n_layers = n_layers
        # first layer: plain conv with bias, no norm, no spectral norm (official)
        self.model0 = nn.Sequential(nn.Conv2d(in_ch, ndf, KW, 2, PADW), nn.LeakyReLU(0.2, True))
        ch = ndf
        for n in range(1, n_layers):
            out_ch, stride = min(ch * 2, MAX_CH), 1 if n == n_layers - 1 else 2
            self.add_module(
                f"model{n}", conv_norm_act(ch, out_ch, KW, stride, PADW, norm=norm, spectral=spectral)
            )
            ch = out_ch
        self.add_module(f"model{n_layers}", nn.Sequential(nn.Conv2d(ch, 1, KW, 1, PADW)))
        self.semantic = None
        if semantic_nc is not None:
            self.semantic = SemanticEmbedding(
                semantic_nc, ch, embed_nc=embed_nc, kernel_size=KW, padding=PADW
            )

    def forward(self, x: Tensor, seg: Tensor | None = None) -> list[Tensor]:
        """x: (b, in_ch, H, W) -> [model0 .. model{n-1} features, logits (b, 1, h, w)].

        seg: (b, semantic_nc, H, W), only read by the semantic-embedding head.
        """
        feats = []
        for n in range(self.n_layers + 1):
            if n == 0:  # label channels label-sparse when x carries a label layout (cat_labels), else dense
                x = self.model0[1](conv_labels(self.model0[0], x, detect=False))
            else:
                x = getattr(self, f"model{n}")(x)
            feats.append(x)
        if self.semantic is not None:
            feats[-1] = feats[-1] + self.semantic(feats[-2], seg)
        return feats


@register("discriminator")
class MultiscalePatchDiscriminator(nn.Module):
    """`num_D` PatchGANs on an image pyramid (SPADE's `MultiscaleDiscriminator`; CC-FPSE's "MsPatch").

    Args:
        semantic_nc: label channels of `seg`; the 3 image channels are added here.
        n_layers: convs before each scale's logits (official `n_layers_D` = 4; 3 before May 2019).
        num_D: number of scales (official 2).
        norm: param-free norm after each middle conv: 'instance' (official), 'batch', 'syncbatch' or None.
        spectral: spectral norm on the middle convs (official `spectralinstance`).
        semantic_embedding: "MsPatch+SE": each scale sees only the image and adds the projection score
            `sum_c embed(seg)[c] * project(h)[c]` to its logits, `project` reading the same 4x4 window of the
            last features as the logit conv. The paper (CC-FPSE Sec. 3.2.2) feeds its SE discriminator "only
            the real or generated images", so the label map is not concatenated either.
        embed_nc: SE embedding width; default 2 * ndf, the FPSE discriminator's ratio.
    """

    def __init__(
        self,
        semantic_nc: int,
        *,
        ndf: int = 64,
        n_layers: int = 4,
        num_D: int = 2,
        norm: LayerType | None = "instance",
        spectral: bool = True,
        semantic_embedding: bool = False,
        embed_nc: int | None = None,
    ) -> None:
        super().__init__()
        if num_D < 1 or n_layers < 1:
            raise ValueError(f"num_D={num_D} and n_layers={n_layers} must both be >= 1")
        self.semantic_nc = semantic_nc
        self.num_D = num_D
        self.semantic_embedding = semantic_embedding
        in_ch = 3 if semantic_embedding else semantic_nc + 3
        for i in range(num_D):
            scale = PatchDiscriminator(
                in_ch,
                ndf=ndf,
                n_layers=n_layers,
                norm=norm,
                spectral=spectral,
                semantic_nc=semantic_nc if semantic_embedding else None,
                embed_nc=embed_nc or 2 * ndf,
            )
            self.add_module(f"discriminator_{i}", scale)  # official names
        init_weights(self)

    def forward(self, img: Tensor, seg: Tensor) -> list[list[Tensor]]:
        """img: (b, 3, H, W) in [-1, 1]; seg: (b, semantic_nc, H, W) one-hot (+ dontcare, edges).

        Returns, per scale s (input H / 2^s), `n_layers` features then the logits (b, 1, h_s, w_s);
        for 256 x 256 and the defaults the logits are 35 x 35 and 19 x 19.
        """
        check_inputs(img, seg, self.semantic_nc)
        x = img if self.semantic_embedding else cat_labels(seg, img)  # label first, as the official
        outputs = []
        for i in range(self.num_D):
            if i > 0:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(getattr(self, f"discriminator_{i}")(x, seg))
        return outputs

    def split(self, outputs: list[list[Tensor]]) -> DiscriminatorSplit:
        """Logits of every scale; every scale's intermediate features, each weighted 1/num_D (official)."""
        logits = [scale[-1] for scale in outputs]
        features = [f for scale in outputs for f in scale[:-1]]
        return DiscriminatorSplit(logits, features, [1.0 / len(outputs)] * len(features))
