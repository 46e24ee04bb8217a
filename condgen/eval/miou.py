"""Segmentation accuracy of generated images: confusion matrices, mIoU and pixel accuracy.

The protocol of SPADE and CC-FPSE (CC-FPSE #4): a pretrained segmenter labels each generated image, and its
prediction is scored against the label map the image was generated from. Scores come from one confusion
matrix summed over all images (not a mean of per-image scores). A class's IoU is
`TP / (TP + FP + FN)`; pixels with the ignore id (don't care) are left out of every count. Which classes the
mean runs over is a per-protocol choice (`AVERAGING`), and the numbers move with it:
- `gt_or_pred`: classes that occur in the ground truth *or* the prediction (a class predicted but absent
  scores 0): the NaN-skipping mean of mmsegmentation and fyu/drn's `per_class_iu`;
- `gt`: classes that occur in the ground truth only (a class predicted but absent is left out): DeepLab's
  own rule (kazuto1011/deeplab-pytorch scores only classes with ground-truth pixels);
- `all`: every class, a class that never occurs scoring 0 (a fixed denominator, imaginaire-style).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def confusion_matrix(
    pred: Tensor, target: Tensor, num_classes: int, *, ignore_index: int | None = 255
) -> Tensor:
    """(num_classes, num_classes) int64 counts: rows are the true class, columns the predicted one.

    Args:
        pred, target: integer class ids of the same shape (any number of dims).
        ignore_index: target id to skip (don't care); targets outside 0..num_classes-1 are an error otherwise.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        raise ValueError(
            f"target ids span {int(target.min())}..{int(target.max())} but num_classes={num_classes} "
            f"(ignore_index={ignore_index}); remap the labels to the segmenter's classes first"
        )
    if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= num_classes):
        raise ValueError(
            f"predicted ids span {int(pred.min())}..{int(pred.max())}, outside 0..{num_classes - 1}"
        )
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


AVERAGING = ("gt_or_pred", "gt", "all")


def segmentation_scores(
    confusion: Tensor | np.ndarray, *, average: str = "gt_or_pred"
) -> dict[str, float | list[float | None] | str]:
    """mIoU, pixel accuracy, mean class accuracy and per-class IoU (None where a class never occurs).

    Args:
        average: which classes mIoU averages over: 'gt_or_pred' (default), 'gt' or 'all' (module docstring).
    """
    if average not in AVERAGING:
        raise ValueError(f"average={average!r}; choose one of {', '.join(AVERAGING)}")
    conf = np.asarray(confusion.cpu() if isinstance(confusion, Tensor) else confusion, dtype=np.float64)
    tp = np.diag(conf)
    gt, predicted = conf.sum(axis=1), conf.sum(axis=0)
    union = gt + predicted - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        class_acc = np.where(gt > 0, tp / gt, np.nan)
    total = conf.sum()
    if average == "gt":
        counted = np.where(gt > 0, iou, np.nan)
    elif average == "all":
        counted = np.nan_to_num(iou, nan=0.0) if total else iou
    else:
        counted = iou
    return {
        "miou": float(np.nanmean(counted)) if np.isfinite(counted).any() else float("nan"),
        "averaging": average,
        "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
        "mean_class_accuracy": float(np.nanmean(class_acc)) if np.isfinite(class_acc).any() else float("nan"),
        "per_class_iou": [None if np.isnan(v) else float(v) for v in iou],
        "pixels": int(total),
    }
