import pytest
import torch

from condgen.data.labels import encode_labels, get_edges, semantic_nc
from condgen.data.spec import DataSpec


def test_semantic_nc_matches_official_datasets():
    assert semantic_nc(182, True, True) == 184  # COCO-Stuff
    assert semantic_nc(150, True, False) == 151  # ADE20K
    assert semantic_nc(35, False, True) == 36  # Cityscapes
    assert DataSpec(35, False, True, crop_size=512, aspect_ratio=2.0).size == (256, 512)


def test_edges_mark_both_sides_of_every_boundary():
    inst = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2]]).view(1, 1, 3, 4)
    expect = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1]], dtype=torch.float).view(1, 1, 3, 4)
    assert torch.equal(get_edges(inst), expect)


def test_channel_order_is_classes_then_dontcare_then_edge():
    labels = torch.tensor([[0, 1], [2, 3]]).view(1, 1, 2, 2)  # 3 = don't care for label_nc 3
    inst = torch.tensor([[5, 5], [5, 6]]).view(1, 1, 2, 2)
    seg = encode_labels(labels, 3, contain_dontcare_label=True, instance=inst)
    assert seg.shape == (1, 5, 2, 2)
    assert torch.equal(seg[0, :4].argmax(0), labels[0, 0])
    assert seg[0, 3, 1, 1] == 1  # don't-care channel right after the classes
    assert torch.equal(seg[0, 4], get_edges(inst)[0, 0])  # edges last
    assert torch.equal(seg[:, :4].sum(1), torch.ones(1, 2, 2))


def test_out_of_range_label_names_the_fix():
    labels = torch.full((1, 1, 2, 2), 13)
    with pytest.raises(ValueError, match="contain_dontcare_label = True") as err:
        encode_labels(labels, 13, source="x.png")
    assert "x.png" in str(err.value) and "13..13" in str(err.value)
    with pytest.raises(ValueError, match="raise label_nc above 40"):
        encode_labels(torch.full((1, 1, 2, 2), 40), 13)


def test_rgb_mask_and_missing_instances_are_clear_errors():
    with pytest.raises(ValueError, match="RGB colour mask"):
        encode_labels(torch.zeros(1, 3, 4, 4, dtype=torch.long), 13)
    with pytest.raises(ValueError, match="no instance map was given"):
        encode_labels(torch.zeros(1, 1, 4, 4, dtype=torch.long), 13, instance_edges=True)
