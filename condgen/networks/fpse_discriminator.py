"""Feature-pyramid semantics-embedding discriminator (CC-FPSE, Sec. 3.2, Fig. 2 right; "FP+SE" in Table 2).

One image-only encoder (enc1..enc5, 3x3 stride 2) with an FPN top-down path (1x1 laterals, bilinear x2), a
3x3 `final` conv per level 2..4, and heads shared by the three levels: `tf` (real/fake) plus the
semantic-embedding score (`blocks/semantic_embedding.py`). `D(img, seg)` returns `[feats, preds]` as the
official: feats = the outputs of enc2..enc5, preds = the logits at 1/4, 1/8, 1/16 of the input.

`split` for the losses: logits = preds; features = the 4 encoder features, weight 1/4 each (official:
lambda_feat/4 per level; the trainer multiplies by lambda_feat). `semantic_embedding=False` gives "FP": no
SE head, and the label map is concatenated to the image instead (as MsPatch does) so the discriminator stays
conditional; the paper's Table 2 has no FP-only cell, this is our ablation. Deviations: upsampling goes to
each lateral's size (any input size works; identical to x2 for sizes divisible by 32, the only sizes the
official code accepts), and the label map is pooled before it is embedded (see the block).
"""

from __future__ import annotations

from functools import partial

import torch.nn.functional as F
from torch import Tensor, nn

from condgen.blocks.semantic_embedding import SemanticEmbedding
from condgen.networks.discriminator import DiscriminatorSplit, check_inputs, conv_norm_act
from condgen.networks.init import init_weights
from condgen.ops.label_conv import cat_labels, conv_labels
from condgen.registry import register
from condgen.utils import LayerType

ENCODER = (1, 2, 4, 8, 8)  # enc1..enc5 widths in multiples of ndf (256 px input: 128, 64, 32, 16, 8 px)
LEVELS = (2, 3, 4)  # pyramid levels with a prediction; level k has the size of enc k


@register("discriminator")
class FPSEDiscriminator(nn.Module):
    """Feature-pyramid discriminator with semantic embeddings (official `FPSEDiscriminator`).

    Args:
        semantic_nc: label channels of `seg` (one-hot + dontcare + edge channels, all embedded).
        ndf: base width; laterals / top-down path 4 * ndf, final convs and embedding 2 * ndf.
        norm: param-free norm after each conv: 'instance' (official `spectralinstance`), 'batch', ... or None.
        spectral: spectral norm on every encoder / lateral / final conv (official).
        semantic_embedding: True = FPSE (image-only input + projection score); False = "FP", the label map
            concatenated to the image and plain real/fake heads.
    """

    # Our SE block holds the official `embedding` and `seg` (feature projection) convs; the rest keeps
    # its name.
    OFFICIAL_RENAMES: dict[str, str | None] = {"embedding.": "semantic.embed.", "seg.": "semantic.project."}

    def __init__(
        self,
        semantic_nc: int,
        *,
        ndf: int = 64,
        norm: LayerType | None = "instance",
        spectral: bool = True,
        semantic_embedding: bool = True,
    ) -> None:
        super().__init__()
        self.semantic_nc = semantic_nc
        self.semantic_embedding = semantic_embedding
        block = partial(conv_norm_act, norm=norm, spectral=spectral)
        widths = [3 if semantic_embedding else semantic_nc + 3] + [m * ndf for m in ENCODER]
        for k, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:], strict=True), start=1):
            self.add_module(f"enc{k}", block(c_in, c_out, 3, 2, 1))
        for k in range(2, len(ENCODER) + 1):
            self.add_module(f"lat{k}", block(widths[k], 4 * ndf, 1, 1, 0))
        for k in LEVELS:
            self.add_module(f"final{k}", block(4 * ndf, 2 * ndf, 3, 1, 1))
        self.tf = nn.Conv2d(2 * ndf, 1, 1)  # real/fake head, shared by the levels
        self.semantic = None
        if semantic_embedding:
            self.semantic = SemanticEmbedding(semantic_nc, 2 * ndf, embed_nc=2 * ndf)
        init_weights(self)

    def forward(self, img: Tensor, seg: Tensor) -> list[list[Tensor]]:
        """img: (b, 3, H, W) in [-1, 1]; seg: (b, semantic_nc, H, W) one-hot (+ dontcare, edges).

        Returns `[feats, preds]`: feats = enc2..enc5 outputs (2, 4, 8, 8 x ndf channels at H/4 .. H/32),
        preds = 3 logit maps (b, 1, H/4, W/4), (b, 1, H/8, W/8), (b, 1, H/16, W/16).
        """
        check_inputs(img, seg, self.semantic_nc)
        h, w = img.shape[-2:]
        if -(-h // 32) * -(-w // 32) < 2:  # enc5 works at 1/32; instance norm needs > 1 pixel
            raise ValueError(f"FPSE needs an input over 32 px on at least one side (e.g. 64), got {h}x{w}")
        x = img if self.semantic_embedding else cat_labels(seg, img)
        bottom_up = []
        for k in range(1, len(ENCODER) + 1):
            if k == 1 and not self.semantic_embedding:  # "FP": the label channels label-sparse
                (conv, norm), act = self.enc1
                x = act(norm(conv_labels(conv, x, detect=False)))
            else:
                x = getattr(self, f"enc{k}")(x)
            bottom_up.append(x)
        top = self.lat5(bottom_up[4])
        top_down = {len(ENCODER): top}
        for k in range(len(ENCODER) - 1, 1, -1):  # levels 4, 3, 2
            lateral = getattr(self, f"lat{k}")(bottom_up[k - 1])
            top = F.interpolate(top, size=lateral.shape[-2:], mode="bilinear", align_corners=False) + lateral
            top_down[k] = top
        preds = []
        for k in LEVELS:
            final = getattr(self, f"final{k}")(top_down[k])
            pred = self.tf(final)
            if self.semantic is not None:
                pred = pred + self.semantic(final, seg)
            preds.append(pred)
        return [bottom_up[1:], preds]

    def split(self, outputs: list[list[Tensor]]) -> DiscriminatorSplit:
        """Logits = the 3 preds; features = the 4 encoder features, weight 1/4 each (official)."""
        feats, preds = outputs
        return DiscriminatorSplit(list(preds), list(feats), [1.0 / len(feats)] * len(feats))
