"""Multi-scale PatchGAN discriminator (pix2pixHD / SPADE Sec. 4 and appendix; "MsPatch" in CC-FPSE Table 2).

`num_D` identical 4x4-conv PatchGANs see the input at full size, then average-pooled by 2 per scale; each
returns every intermediate feature and its patch logits last, so `D(img, seg)` is a list over scales of
lists (the official nested order). `semantic_embedding=True` gives "MsPatch+SE": the scales see only the
image and the label map enters through a projection head (`blocks/semantic_embedding.py`) added to each
scale's logits.

`split(outputs)` follows the contract in `discriminator.py`. Here the features are the intermediate outputs of
every scale (the logits excluded) with weight 1/num_D each, summed over layers, as the official SPADE loss.
Deviations from the official code: the structure never depends on a loss flag, and the last scale's input is
not pooled once more (the official pools it and throws it away).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from condgen.blocks.semantic_embedding import SemanticEmbedding
from condgen.networks.discriminator import DiscriminatorSplit, check_inputs, conv_norm_act
from condgen.networks.init import init_weights
from condgen.ops.label_conv import cat_labels, conv_labels
from condgen.registry import register
from condgen.utils import LayerType

MAX_CH = 512  # the official channel cap `min(nf * 2, 512)`, independent of ndf
KW, PADW = 4, 2  # official kernel 4 and padding ceil((4 - 1) / 2) = 2: every layer grows the map by 1 pixel


class PatchDiscriminator(nn.Module):
    """One PatchGAN scale (official `NLayerDiscriminator`): `model0 .. model{n_layers}`, logits last.

    Args:
        in_ch: input channels (semantic_nc + 3 with the label map concatenated, 3 with semantic_nc given).
        n_layers: stride-2 convs before the logits, the last of them with stride 1 (official since c0d50e6).
        last_stride: stride of that last conv (2: SPADE before c0d50e6, and SEAN).
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
        last_stride: int = 1,
    ) -> None:
        super().__init__()
        self.n_layers = n_layers
        # first layer: plain conv with bias, no norm, no spectral norm (official)
        self.model0 = nn.Sequential(nn.Conv2d(in_ch, ndf, KW, 2, PADW), nn.LeakyReLU(0.2, True))
        ch = ndf
        for n in range(1, n_layers):
            out_ch, stride = min(ch * 2, MAX_CH), last_stride if n == n_layers - 1 else 2
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
        last_stride: stride of each scale's last middle conv (official 1; SEAN 2, with n_layers 3).
    """

    # Module names equal the official ones: only the spectral-norm suffixes change (condgen.convert).
    OFFICIAL_RENAMES: dict[str, str | None] = {}

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
        last_stride: int = 1,
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
                last_stride=last_stride,
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
