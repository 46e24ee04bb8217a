"""The file-based datasets in their official layouts: pairing, id conventions, preprocessing, flips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from condgen.data import (
    ADE20K,
    Cityscapes,
    CocoStuff,
    CustomFolder,
    DataError,
    SyntheticLandscapes,
    encode_labels,
    get_edges,
)
from condgen.data.ade20k import write_outdoor_list
from condgen.registry import names
from tests.data.conftest import photo_of, save_ids, save_photo, stripes


def red_ids(item: dict) -> torch.Tensor:
    """The red channel as 0..255 integers (`photo_of` stores id * 7 there)."""
    return torch.round((item["image"][0] + 1) * 127.5).long()


def test_datasets_are_registered():
    assert {"CocoStuff", "ADE20K", "Cityscapes", "CustomFolder", "SyntheticLandscapes"} <= set(
        names("dataset")
    )


# ----- COCO-Stuff
def test_coco_pairs_maps_255_and_reads_instances(coco_root):
    ds = CocoStuff(coco_root, crop_size=32)
    assert len(ds) == 3 and len(CocoStuff(coco_root, split="val", crop_size=32)) == 2
    assert ds.spec.semantic_nc == 184
    item = ds[0]
    assert item["label"].shape == (1, 32, 32) and item["label"].dtype == torch.int64
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert -1 <= item["image"].min() and item["image"].max() <= 1
    assert item["instance"].shape == (1, 32, 32)
    assert item["path"].endswith("train_label/000000000000.png")
    native = ds.check_item(0)
    assert set(native.unique().tolist()) == {0, 5, 181, 182}  # 255 -> label_nc
    assert CocoStuff(coco_root, split="test", crop_size=32).split == "val"  # official: test reads val


def test_coco_portraits_are_appended_in_training_only(coco_root):
    save_ids(coco_root / "train_label_portrait" / "p.png", stripes(48, 40, [1, 2]))
    save_ids(coco_root / "train_inst_portrait" / "p.png", stripes(48, 40, [1, 2]))
    save_photo(coco_root / "train_img_portrait" / "p.png", photo_of(stripes(48, 40, [1, 2])))
    assert len(CocoStuff(coco_root, crop_size=32)) == 4
    assert len(CocoStuff(coco_root, crop_size=32, portraits=False)) == 3
    assert len(CocoStuff(coco_root, split="val", crop_size=32)) == 2


def test_coco_without_instances(coco_root):
    ds = CocoStuff(coco_root, crop_size=32, instance_edges=False)
    assert "instance" not in ds[0] and ds.spec.semantic_nc == 183


def test_instance_edges_come_from_instance_ids_not_labels(coco_root):
    ds = CocoStuff(coco_root, crop_size=48, load_size=48, aspect_ratio=48 / 40, flip=False)  # no resize
    item = ds[0]
    seg = encode_labels(
        item["label"][None], 182, contain_dontcare_label=True, instance=item["instance"][None]
    )
    assert seg.shape == (1, ds.spec.semantic_nc, 40, 48)
    edges = seg[0, -1]
    assert torch.equal(edges, get_edges(item["instance"][None])[0, 0])
    # rows 19/20 split class 5 into two instances: an edge inside one label region
    cols = (item["label"][0, 0] == 5).nonzero()[:, 0]
    col = int(cols[len(cols) // 2])  # inside the class-5 stripe, away from label boundaries
    assert edges[19, col] == 1 and edges[20, col] == 1 and edges[30, col] == 0


# ----- ADE20K
def test_ade_keeps_raw_ids_and_has_no_instances(ade_root):
    ds = ADE20K(ade_root, crop_size=32)
    assert len(ds) == 2 and ds.spec.semantic_nc == 151 and not ds.spec.instance_edges
    assert set(ds.check_item(0).unique().tolist()) == {0, 3, 14, 150}  # 0 'other' stays channel 0
    assert "instance" not in ds[0]
    assert len(ADE20K(ade_root.parent, split="val", crop_size=32)) == 1  # the parent folder works too


def test_ade_outdoor_subset(ade_root, tmp_path):
    kept = ADE20K(ade_root, outdoor=True, crop_size=32)
    assert [s.label.stem for s in kept.samples] == ["ADE_train_00000001"]  # the ceiling image is dropped
    listing = tmp_path / "outdoor.txt"
    listing.write_text("ADE_train_00000002.jpg\n")
    assert [s.label.stem for s in ADE20K(ade_root, outdoor=str(listing), crop_size=32).samples] == [
        "ADE_train_00000002"
    ]


def test_ade_full_release_is_rejected(tmp_path):
    (tmp_path / "ADE20K_2016_07_26" / "images" / "ADE" / "training").mkdir(parents=True)
    with pytest.raises(DataError, match="full ADE20K release"):
        ADE20K(tmp_path / "ADE20K_2016_07_26")


# ----- Cityscapes
def test_cityscapes_label_ids_16bit_instances_and_fixed_size(cityscapes_root):
    ds = Cityscapes(cityscapes_root, crop_size=64, flip=False)
    assert len(ds) == 2 and ds.spec.semantic_nc == 36
    item = ds[0]
    assert item["label"].shape == (1, 32, 64)  # fixed: crop_size x crop_size / aspect 2
    assert set(item["label"].unique().tolist()) == {7, 26, 33}  # raw labelIds, no trainId mapping
    assert set(item["instance"].unique().tolist()) == {7, 26000, 26001, 33}
    assert get_edges(item["instance"][None])[0, 0, :, 31:33].eq(1).all()  # car | car boundary
    assert torch.equal(red_ids(item), (item["label"][0] * 7) % 256)
    assert Cityscapes(cityscapes_root, split="val", crop_size=64).samples[0].image.name.startswith("lindau")


# ----- custom
def test_custom_folder_flat_and_split_layouts(custom_root):
    ds = CustomFolder(custom_root, label_nc=4, crop_size=16)
    assert len(ds) == 3 and not ds.spec.instance_edges and ds.spec.semantic_nc == 4
    assert ds[0]["label"].max() <= 3
    (custom_root / "instances").mkdir()
    for i in range(3):
        save_ids(custom_root / "instances" / f"img{i}.png", stripes(24, 32, [0, 1, 2, 3]))
    assert CustomFolder(custom_root, label_nc=4, crop_size=16).spec.instance_edges  # on when present


# ----- preprocessing
@pytest.mark.parametrize(
    "preprocess, load, out",
    [("resize_and_crop", None, (32, 32)), ("fixed", None, (32, 32)), ("resize_and_crop", 64, (32, 32))],
)
def test_preprocess_shapes(coco_root, preprocess, load, out):
    ds = CocoStuff(coco_root, crop_size=32, load_size=load, preprocess=preprocess)
    item = ds[1]
    assert (
        item["label"].shape[-2:] == out
        and item["image"].shape[-2:] == out
        and item["instance"].shape[-2:] == out
    )
    assert ds.load_size == (load or 36)  # official 286 for 256, scaled: round(32 * 286 / 256) = 36


def test_aspect_ratio_crops(coco_root):
    ds = CocoStuff(coco_root, crop_size=32, aspect_ratio=2.0)
    assert ds[0]["label"].shape == (1, 16, 32) == (1, *ds.spec.size)


def test_none_needs_exact_size(custom_root):
    assert CustomFolder(custom_root, label_nc=4, crop_size=32, aspect_ratio=32 / 24, preprocess="none")[0][
        "label"
    ].shape == (1, 24, 32)
    with pytest.raises(DataError, match="img0.png.*preprocess='none'"):
        CustomFolder(custom_root, label_nc=4, crop_size=16, preprocess="none")[0]


def test_crop_and_flip_hit_label_instance_and_image_alike(coco_root):
    # load size and aspect of the files (48x40): no interpolation, so the photo's red channel still encodes
    # the ids and the instance map still equals the label map up to its extra instance 77 of class 5
    ds = CocoStuff(coco_root, crop_size=24, load_size=48, aspect_ratio=48 / 40)
    flips, corners = set(), set()
    for seed in range(12):
        torch.manual_seed(seed)
        item = ds[0]
        label = item["label"][0]
        assert label.shape == (20, 24)
        raw = label.masked_fill(label == 182, 255)
        assert torch.equal(red_ids(item), (raw * 7) % 256)
        assert torch.equal(item["instance"][0].masked_fill(item["instance"][0] == 77, 5), raw)
        flips.add(bool(item["image"][1, 0, 0] > item["image"][1, 0, -1]))  # green = x: decreasing if flipped
        corners.add(int(item["image"][1, 0, 0] * 127.5 + 127.5 + 0.5))
    assert flips == {True, False} and len(corners) > 2


def test_augmentation_is_deterministic_given_the_torch_seed(coco_root):
    ds = CocoStuff(coco_root, crop_size=24)
    torch.manual_seed(3)
    a = ds[2]
    torch.manual_seed(3)
    b = ds[2]
    assert all(torch.equal(a[k], b[k]) for k in ("label", "image", "instance"))
    crops = set()
    for seed in range(8):
        torch.manual_seed(seed)
        crops.add(ds[2]["image"].sum().item())
    assert len(crops) > 1


def test_val_split_is_not_augmented(coco_root):
    ds = CocoStuff(coco_root, split="val", crop_size=32, load_size=40)
    assert not ds.flip
    torch.manual_seed(0)
    a = ds[0]["image"]
    torch.manual_seed(1)
    assert torch.equal(a, ds[0]["image"])


def test_dataloader_batches(coco_root):
    loader = torch.utils.data.DataLoader(CocoStuff(coco_root, crop_size=32), batch_size=2)
    batch = next(iter(loader))
    assert batch["label"].shape == (2, 1, 32, 32) and batch["image"].shape == (2, 3, 32, 32)
    assert len(batch["path"]) == 2


def test_photo_values_match_official_normalisation(custom_root):
    ds = CustomFolder(
        custom_root, label_nc=4, crop_size=32, aspect_ratio=32 / 24, preprocess="none", flip=False
    )
    item = ds[0]
    rgb = np.asarray(Image.open(ds.samples[0].image).convert("RGB"))
    expected = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255 * 2 - 1
    assert torch.allclose(item["image"], expected, atol=1e-6)


def test_gin_binds_the_datasets(coco_root):
    import gin  # local: ruff's isort currently takes `gin` for first-party (the repo has a gin/ folder)

    gin.parse_config(
        f"CocoStuff.root = '{coco_root}'\nCocoStuff.crop_size = 32\nCocoStuff.instance_edges = False\n"
        "SyntheticLandscapes.crop_size = 16\nSyntheticLandscapes.length = 3"
    )
    assert CocoStuff().spec.semantic_nc == 183 and CocoStuff()[0]["label"].shape == (1, 32, 32)
    assert len(SyntheticLandscapes()) == 3 and SyntheticLandscapes()[0]["image"].shape == (3, 16, 16)


def test_write_outdoor_list(ade_root, tmp_path):
    assert write_outdoor_list(ade_root, "train", tmp_path / "o.txt") == 1
    assert (tmp_path / "o.txt").read_text() == "ADE_train_00000001\n"
