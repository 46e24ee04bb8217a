"""Confusion matrices and scores on hand-made cases."""

import math

import pytest
import torch

from condgen.eval.miou import confusion_matrix, segmentation_scores


def test_perfect_prediction_scores_one():
    target = torch.tensor([[0, 0, 1], [1, 2, 2]])
    scores = segmentation_scores(confusion_matrix(target, target, 3))
    assert scores["miou"] == scores["pixel_accuracy"] == scores["mean_class_accuracy"] == 1.0
    assert scores["pixels"] == 6


def test_hand_computed_iou_and_accuracy():
    # class 0: 3 pixels, 2 right; class 1: 1 pixel, right; class 2 never true but predicted once
    target = torch.tensor([0, 0, 0, 1])
    pred = torch.tensor([0, 0, 2, 1])
    conf = confusion_matrix(pred, target, 4)
    assert conf.tolist() == [[2, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    s = segmentation_scores(conf)
    # IoU: class 0 = 2 / (3 + 2 - 2) = 2/3, class 1 = 1, class 2 = 0 / (0 + 1 - 0) = 0, class 3 absent
    assert s["per_class_iou"][:3] == pytest.approx([2 / 3, 1.0, 0.0]) and s["per_class_iou"][3] is None
    assert s["miou"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert s["pixel_accuracy"] == pytest.approx(3 / 4)
    assert s["mean_class_accuracy"] == pytest.approx((2 / 3 + 1) / 2)


def test_ignored_pixels_count_nowhere():
    target = torch.tensor([0, 255, 1, 255])
    pred = torch.tensor([0, 1, 1, 0])
    conf = confusion_matrix(pred, target, 2, ignore_index=255)
    assert conf.sum() == 2 and segmentation_scores(conf)["miou"] == 1.0


def test_confusion_adds_over_batches():
    torch.manual_seed(0)
    pred, target = torch.randint(0, 5, (4, 8, 8)), torch.randint(0, 5, (4, 8, 8))
    whole = confusion_matrix(pred, target, 5)
    parts = sum(confusion_matrix(pred[i], target[i], 5) for i in range(4))
    assert torch.equal(whole, parts)


def test_bad_ids_are_errors_naming_the_fix():
    with pytest.raises(ValueError, match="remap the labels"):
        confusion_matrix(torch.tensor([0]), torch.tensor([7]), 3)
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix(torch.zeros(2), torch.zeros(3), 3)
    assert math.isnan(segmentation_scores(torch.zeros(2, 2))["miou"])


def test_class_averaging_rules():
    # class 0: 2 of 3 right; class 1 true once, predicted 2; class 2 predicted, never true; class 3 absent
    target = torch.tensor([0, 0, 1, 0])
    pred = torch.tensor([0, 0, 2, 2])
    conf = confusion_matrix(pred, target, 4)
    iou0 = 2 / 3
    assert segmentation_scores(conf)["miou"] == pytest.approx((iou0 + 0 + 0) / 3)  # gt_or_pred
    assert segmentation_scores(conf, average="gt")["miou"] == pytest.approx((iou0 + 0) / 2)
    assert segmentation_scores(conf, average="all")["miou"] == pytest.approx(iou0 / 4)
    assert segmentation_scores(conf, average="gt")["averaging"] == "gt"
    with pytest.raises(ValueError, match="average"):
        segmentation_scores(conf, average="present")
