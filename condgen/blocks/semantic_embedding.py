"""Semantic-embedding (projection) head for discriminators (CC-FPSE, Sec. 3.2.2).

Adds a semantic matching score to the real/fake logits: `sum_c E(seg_i)[c] * P(h)[c]`, where `seg_i` is the
label map average-pooled to the logit size, `E` a 1x1 conv embedding each pixel's label histogram, `P` a
conv projecting the discriminator features into the same space (Miyato & Koyama's projection D, made
spatial). Deviation from the official FPSE: it embeds the full-resolution map and then average-pools the
embedding; `E` is affine, so pooling the label map first gives the same numbers (to rounding) at 1/16 of the
embedding cost.
"""

from __future__ import annotations

import torch.nn.functional as F
from einops import reduce
from torch import Tensor, nn

from condgen.registry import register


@register("block")
class SemanticEmbedding(nn.Module):
    """Projection head: `score = sum_c embed(pool(seg))[c] * project(feat)[c]`, one map per spatial location.

    Args:
        semantic_nc: label channels of `seg` (one-hot + don't-care + edges, all embedded as the official).
        feat_nc: channels of the discriminator features the score is computed from.
        embed_nc: width of the joint embedding (official FPSE: 2 * ndf = feat_nc).
        kernel_size, padding: geometry of `project`; 1 and 0 in FPSE. The multi-scale PatchGAN uses its logit
            conv's 4x4 / pad 2, so every score reads the same feature window as the logit it is added to.
    """

    def __init__(
        self, semantic_nc: int, feat_nc: int, *, embed_nc: int = 128, kernel_size: int = 1, padding: int = 0
    ) -> None:
        super().__init__()
        self.semantic_nc = semantic_nc
        self.embed = nn.Conv2d(semantic_nc, embed_nc, 1)  # official key: `embedding`
        self.project = nn.Conv2d(feat_nc, embed_nc, kernel_size, padding=padding)  # official key: `seg`

    def embed_labels(self, seg: Tensor, size: tuple[int, int]) -> Tensor:
        """seg: (b, semantic_nc, H, W) -> (b, embed_nc, *size): label histogram of each cell, embedded.

        For sizes that divide (H, W) this is the plain k x k average pool the paper describes ("downsample
        the label map to the same spatial resolution"); otherwise adaptive pooling's near-even windows.
        """
        if seg.shape[1] != self.semantic_nc:
            raise ValueError(
                f"label map has {seg.shape[1]} channels, the semantic embedding expects {self.semantic_nc} "
                "(semantic_nc = label_nc + dontcare + instance edge); check the dataset's gin file"
            )
        return self.embed(F.adaptive_avg_pool2d(seg, size))

    def forward(self, feat: Tensor, seg: Tensor) -> Tensor:
        """feat: (b, feat_nc, h, w); seg: (b, semantic_nc, H, W) -> score (b, 1, h', w'), h' = h for 1x1."""
        projected = self.project(feat)
        embedded = self.embed_labels(seg, tuple(projected.shape[-2:]))
        return reduce(projected * embedded, "b c h w -> b 1 h w", "sum")
