"""The OASIS objective (OASIS, ICLR 2021, Sec. 3.1-3.2): N+1-class segmentation losses and LabelMix.

The discriminator (`OASISDiscriminator`) returns per-pixel logits over N+1 classes, channel 0 "fake" and
channel k + 1 label channel k. With CE_p(y, t) = -log softmax(y_p)[t] and every mean over all B*H*W pixels:
- D fake term: mean_p CE_p(D(fake), 0), unweighted (don't-care pixels included);
- D real term: mean_p w(p) CE_p(D(real), l(p) + 1);
- G term: mean_p w(p) CE_p(D(G(seg)), l(p) + 1) (the real-term formula applied to the fake);
- LabelMix (D step): a binary mask M from the label map (one random bit per class present in the batch),
  x_mix = M x_real + (1 - M) x_fake, loss lambda_labelmix x mean (M D(x_real) + (1 - M) D(x_fake)
  - D(x_mix))^2 over all elements, nothing detached (the gradient reaches D through all three outputs);
- optional VGG19 perceptual term on the G step (off by default, as in the original).
Class balancing: per batch, n_c = pixels of class c, the don't-care class's count set to 0, K = classes with
n_c > 0, w_c = B*H*W / (K n_c), w(don't-care) = 0; applied to the D real term and the G term only.

`l(p)` is the first maximal channel of `seg` (an instance-edge channel, condgen's last, never wins); the
don't-care channel is `dontcare_channel` in the label map's own order (condgen's order: 0 for ADE20K and
Cityscapes, 182 for COCO-Stuff; see `condgen/data/oasis_labels.py`). The D step makes the fake under
`no_grad` with fresh noise, as the original does; D(fake), D(real), D(mixed) are three calls in that order
(spectral-norm power iterations advance per call, as in the original).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condgen.data.oasis_labels import class_map
from condgen.losses.perceptual import VGGLoss
from condgen.objectives.base import Objective
from condgen.registry import register


def class_weights(labels: Tensor, num_classes: int, dontcare: int | None = 0) -> Tensor:
    """(num_classes,) float32 class-balancing coefficients of one batch (B*H*W / (K n_c), don't-care 0).

    labels: (b, H, W) int64 class ids. Absent classes get +inf (they are never looked up). Computed in
    the original's order (reciprocal, times the one-hot's element count, divided by K * num_classes).
    """
    counts = torch.bincount(labels.flatten(), minlength=num_classes)[:num_classes].float()
    if dontcare is not None:
        counts[dontcare] = 0
    k = max(int((counts > 0).sum()), 1)
    numel = labels.numel() * num_classes
    coefficients = torch.reciprocal(counts) * numel / (k * num_classes)
    if dontcare is not None:
        coefficients[dontcare] = 0
    return coefficients


def labelmix_mask(labels: Tensor, bits: Tensor | None = None, *, class0_quirk: bool = False) -> Tensor:
    """(b, 1, H, W) float 0/1 LabelMix mask: one random bit per class present in the whole batch.

    Args:
        labels: (b, H, W) int64 class ids.
        bits: the bits of the present classes in ascending id order (drawn with `torch.randint` when None).
        class0_quirk: reproduce the original's in-place effect: it writes each bit into the class map as it
            goes, so class 0's pixels end with bit(0) * bit(1) when class 1 is present. Off by default (every
            class its own bit, the method as described); on for exact parity with the original.
    """
    classes = torch.unique(labels)  # ascending
    if bits is None:
        bits = torch.randint(0, 2, (len(classes),), device=labels.device)
    bits = torch.as_tensor(bits, device=labels.device).to(torch.get_default_dtype()).reshape(-1)
    if len(bits) != len(classes):
        raise ValueError(f"{len(classes)} classes are present but {len(bits)} bits were given")
    lut = torch.zeros(int(labels.max()) + 1, device=labels.device, dtype=bits.dtype)
    lut[classes] = bits
    if class0_quirk and len(classes) > 1 and classes[0] == 0 and classes[1] == 1:
        lut[0] = bits[0] * bits[1]
    return lut[labels].unsqueeze(1)


def n1_cross_entropy(logits: Tensor, target: Tensor | int, weight_map: Tensor | None = None) -> Tensor:
    """mean over all pixels of w(p) CE_p(logits, target(p)); target an int (the fake class 0) or a map."""
    if isinstance(target, int):
        target = torch.full(
            (logits.shape[0], *logits.shape[2:]), target, device=logits.device, dtype=torch.long
        )
    ce = F.cross_entropy(logits, target, reduction="none")
    return (ce * weight_map).mean() if weight_map is not None else ce.mean()


@register("objective")
class OASISObjective(Objective):
    """OASIS's losses: class-balanced N+1 cross-entropy for D and G, LabelMix for D (+ optional VGG for G).

    Args:
        lambda_labelmix: weight of the LabelMix consistency term (original 10; 5 on Cityscapes).
        labelmix: False switches LabelMix off (original `--no_labelmix`).
        class_balancing: False gives every pixel weight 1 (original `--no_balancing_inloss`).
        dontcare_channel: label channel whose class weight is 0 (in the order `seg` has; condgen's: 0 for
            ADE20K / Cityscapes, 182 for COCO-Stuff); None weights every class.
        lambda_vgg: weight of the VGG19 perceptual term (original `--add_vgg_loss`: 10); 0 = off (default).
        labelmix_class0_quirk: the original's mask quirk (see `labelmix_mask`); for exact parity.
        vgg_loss: the VGG loss class (its options are its own bindings).
    """

    loss_names = ("G_adv", "G_VGG", "D_fake", "D_real", "D_labelmix")

    def __init__(
        self,
        *,
        lambda_labelmix: float = 10.0,
        labelmix: bool = True,
        class_balancing: bool = True,
        dontcare_channel: int | None = 0,
        lambda_vgg: float = 0.0,
        labelmix_class0_quirk: bool = False,
        vgg_loss: Any = VGGLoss,
    ) -> None:
        super().__init__()
        self.lambda_labelmix, self.labelmix = lambda_labelmix, labelmix and lambda_labelmix > 0
        self.class_balancing, self.dontcare_channel = class_balancing, dontcare_channel
        self.lambda_vgg, self.labelmix_class0_quirk = lambda_vgg, labelmix_class0_quirk
        self.vgg_loss = vgg_loss() if lambda_vgg else None

    def targets(self, seg: Tensor) -> tuple[Tensor, Tensor | None]:
        """(N+1 targets l(p) + 1 (b, H, W), class-balancing weight map (b, H, W) or None)."""
        labels = class_map(seg)
        if not self.class_balancing:
            return labels + 1, None
        w = class_weights(labels, seg.shape[1], self.dontcare_channel)
        return labels + 1, w[labels]

    def generator_losses(
        self, G: nn.Module, D: nn.Module, E: nn.Module | None, seg: Tensor, real: Tensor
    ) -> dict[str, Tensor]:
        fake = G(seg)
        target, weight = self.targets(seg)
        return self._with_vgg({"G_adv": n1_cross_entropy(D(fake, seg), target, weight)}, fake, real)

    def discriminator_losses(
        self, G: nn.Module, D: nn.Module, E: nn.Module | None, seg: Tensor, real: Tensor
    ) -> dict[str, Tensor]:
        fake, target, weight, out_fake, out_real = self._discriminator_outputs(G, D, seg, real)
        losses = {
            "D_fake": n1_cross_entropy(out_fake, 0),
            "D_real": n1_cross_entropy(out_real, target, weight),
        }
        if self.labelmix:
            mask = labelmix_mask(target - 1, class0_quirk=self.labelmix_class0_quirk)
            losses["D_labelmix"] = self.lambda_labelmix * self.labelmix_loss(
                D, seg, real, fake, mask, out_real, out_fake
            )
        return losses

    # ----- the parts of the steps that DP-GAN shares
    def _with_vgg(self, losses: dict[str, Tensor], fake: Tensor, real: Tensor) -> dict[str, Tensor]:
        """The G step's losses plus G_VGG when the VGG loss is on."""
        if self.vgg_loss is not None:
            losses["G_VGG"] = self.lambda_vgg * self.vgg_loss(fake, real)
        return losses

    def _discriminator_outputs(
        self, G: nn.Module, D: nn.Module, seg: Tensor, real: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None, Any, Any]:
        """The D step's inputs: (detached fake, targets, class weights, D(fake), D(real))."""
        with torch.no_grad():
            fake = G(seg).detach()
        target, weight = self.targets(seg)
        out_fake = D(fake, seg)
        out_real = D(real, seg)
        return fake, target, weight, out_fake, out_real

    @staticmethod
    def labelmix_loss(
        D: nn.Module,
        seg: Tensor,
        real: Tensor,
        fake: Tensor,
        mask: Tensor,
        out_real: Tensor,
        out_fake: Tensor,
    ) -> Tensor:
        """Unweighted LabelMix MSE: D(M real + (1 - M) fake) against M D(real) + (1 - M) D(fake)."""
        mixed = mask * real + (1 - mask) * fake
        out_mixed = D(mixed, seg)
        return F.mse_loss(mask * out_real + (1 - mask) * out_fake, out_mixed)
