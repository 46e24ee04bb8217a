"""LabelMix's mask under another default dtype (float64 runs, e.g. gradient checks)."""

import torch

from condgen.objectives.oasis import labelmix_mask


def test_labelmix_mask_with_default_dtype_float64():
    labels = torch.tensor([[[0, 2], [5, 2]]])
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        mask = labelmix_mask(labels, torch.tensor([1, 0, 1]))
    finally:
        torch.set_default_dtype(previous)
    assert mask.dtype == torch.float64
    assert mask.tolist() == [[[[1.0, 0.0], [1.0, 0.0]]]]
    assert labelmix_mask(labels, torch.tensor([1, 0, 1])).dtype == torch.float32
