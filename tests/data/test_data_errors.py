"""Every kind of bad input gets its own `DataError` naming the file and the fix, never a crash elsewhere."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from condgen.data import ADE20K, Cityscapes, CocoStuff, CustomFolder, DataError, check_data
from tests.conftest import declared_png
from tests.data.conftest import save_ids, save_photo, stripes


# ----- layout problems: at construction, naming the expected layout
def test_missing_root_names_the_layout(tmp_path):
    with pytest.raises(DataError) as err:
        CocoStuff(tmp_path / "nowhere")
    msg = str(err.value)
    assert "nowhere: dataset root not found" in msg and "train_label/*.png" in msg and "train_img/" in msg


@pytest.mark.parametrize("folder", ["train_img", "train_label", "train_inst"])
def test_missing_folder(coco_root, folder):
    shutil.rmtree(coco_root / folder)
    with pytest.raises(DataError, match=f"{folder}: .*folder not found") as err:
        CocoStuff(coco_root)
    assert err.value.path == str(coco_root / folder)
    if folder == "train_inst":
        assert "instance_edges = False" in str(err.value)
    else:
        assert "CocoStuff expects this layout" in str(err.value)


def test_missing_ade_and_cityscapes_folders(ade_root, cityscapes_root):
    shutil.rmtree(ade_root / "annotations" / "validation")
    with pytest.raises(DataError, match="annotations/validation: annotation folder not found"):
        ADE20K(ade_root, split="val")
    shutil.rmtree(cityscapes_root / "leftImg8bit")
    with pytest.raises(DataError, match="leftImg8bit/train: leftImg8bit photo folder not found"):
        Cityscapes(cityscapes_root)


def test_empty_folders(tmp_path):
    for d in ("images", "labels"):
        (tmp_path / d).mkdir()
    with pytest.raises(DataError, match="no train label maps found"):
        CustomFolder(tmp_path, label_nc=3)


def test_label_without_photo(coco_root):
    (coco_root / "train_img" / "000000000001.png").unlink()
    with pytest.raises(DataError) as err:
        CocoStuff(coco_root)
    assert str(err.value).startswith(str(coco_root / "train_label" / "000000000001.png"))
    assert "no photo with the same name" in str(err.value) and "1 of 3" in str(err.value)


def test_photo_without_label(custom_root):
    save_photo(custom_root / "images" / "stray.jpg", np.zeros((24, 32, 3)))
    with pytest.raises(DataError, match=r"stray\.jpg: photo has no label map with the same name"):
        CustomFolder(custom_root, label_nc=4)


def test_label_without_instance(cityscapes_root):
    next((cityscapes_root / "gtFine" / "train").rglob("*_instanceIds.png")).unlink()
    with pytest.raises(DataError, match="labelIds.png: label map has no instance map"):
        Cityscapes(cityscapes_root)
    assert len(Cityscapes(cityscapes_root, instance_edges=False)) == 2


def test_jpeg_labels_are_rejected(custom_root):
    img = Image.open(custom_root / "labels" / "img0.png")
    (custom_root / "labels" / "img0.png").unlink()
    img.save(custom_root / "labels" / "img0.jpg")
    with pytest.raises(DataError, match=r"img0\.jpg: .*lossless PNG"):
        CustomFolder(custom_root, label_nc=4)


def test_cityscapes_colour_files_only(tmp_path):
    save_ids(tmp_path / "gtFine" / "train" / "a" / "a_0_0_gtFine_color.png", np.zeros((4, 4)))
    (tmp_path / "leftImg8bit" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="_gtFine_labelIds.png"):
        Cityscapes(tmp_path)


# ----- bad files: on access, naming the file
def test_out_of_range_label(custom_root):
    save_ids(custom_root / "labels" / "img1.png", stripes(24, 32, [0, 1, 9, 12]))
    ds = CustomFolder(custom_root, label_nc=4, crop_size=16)
    with pytest.raises(DataError) as err:
        ds[1]
    msg = str(err.value)
    assert msg.startswith(str(custom_root / "labels" / "img1.png")) and "9, 12" in msg
    assert "label_nc >= 13" in msg and err.value.path.endswith("img1.png")
    ds[0]  # the good files still load


def test_255_without_dontcare(cityscapes_root):
    path = next((cityscapes_root / "gtFine" / "train").rglob("*_labelIds.png"))
    save_ids(path, stripes(32, 64, [7, 255]))
    ds = Cityscapes(cityscapes_root, crop_size=64)
    bad = [i for i, s in enumerate(ds.samples) if s.label == path][0]
    with pytest.raises(DataError, match="255 means 'unlabelled': set contain_dontcare_label = True") as err:
        ds[bad]
    assert str(path) in str(err.value)


def test_rgb_colour_mask(custom_root):
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[:, :16] = (128, 64, 128)
    rgb[:, 16:] = (70, 130, 180)
    save_photo(custom_root / "labels" / "img2.png", rgb)
    with pytest.raises(
        DataError, match=r"img2\.png: label map is an RGB image.*colour visualisation \(2 distinct"
    ):
        CustomFolder(custom_root, label_nc=4)[2]


def test_grey_ids_saved_as_rgb(custom_root):
    ids = stripes(24, 32, [0, 1, 2, 3])
    save_photo(custom_root / "labels" / "img2.png", np.repeat(ids[..., None], 3, -1))
    with pytest.raises(DataError, match=r"img2\.png: .*grey but stored as RGB.*convert\('L'\)"):
        CustomFolder(custom_root, label_nc=4)[2]


def test_size_mismatch(coco_root):
    save_photo(coco_root / "train_img" / "000000000002.png", np.zeros((30, 48, 3)))
    ds = CocoStuff(coco_root)
    with pytest.raises(DataError) as err:
        ds[2]
    msg = str(err.value)
    assert msg.startswith(str(coco_root / "train_label" / "000000000002.png"))
    assert "48x40 (WxH)" in msg and "000000000002.png is 48x30 (WxH)" in msg and "misaligned" in msg


@pytest.mark.parametrize("which", ["labels", "images"])
def test_corrupt_file(custom_root, which):
    name = "img1.png" if which == "labels" else "img1.jpg"
    path = custom_root / which / name
    path.write_bytes(path.read_bytes()[:60])  # truncated
    ds = CustomFolder(custom_root, label_nc=4)
    with pytest.raises(DataError, match=rf"{name}: unreadable or corrupt image") as err:
        ds[1]
    assert err.value.path == str(path)


def test_an_image_over_pils_bomb_limit_is_named(custom_root, capsys):
    """PIL's DecompressionBombError is not an OSError: it used to escape as a traceback without the file."""
    (custom_root / "images" / "img1.jpg").write_bytes(declared_png(30000, 30000))  # read by content
    (custom_root / "labels" / "img2.png").write_bytes(declared_png(30000, 30000))
    with pytest.raises(DataError, match=r"img1\.jpg: the image is too large to decode") as err:
        CustomFolder(custom_root, label_nc=4)[1]
    assert err.value.path == str(custom_root / "images" / "img1.jpg")
    report = check_data(CustomFolder(custom_root, label_nc=4))
    assert report.error_count == 2 and "img2.png: the image is too large" in report.format()


def test_not_an_image_at_all(custom_root):
    (custom_root / "labels" / "img0.png").write_text("not a png")
    with pytest.raises(DataError, match=r"img0\.png: unreadable or corrupt image.*re-download"):
        CustomFolder(custom_root, label_nc=4)[0]


def test_errors_survive_a_dataloader_worker(custom_root):
    save_ids(custom_root / "labels" / "img0.png", stripes(24, 32, [0, 200]))
    loader = torch.utils.data.DataLoader(CustomFolder(custom_root, label_nc=4), batch_size=1, num_workers=1)
    with pytest.raises(DataError, match=r"img0\.png: label ids 200 are outside 0\.\.3") as err:
        next(iter(loader))
    # the same one line as without workers, not "Caught DataError in DataLoader worker process 0." first
    assert str(err.value).startswith(str(custom_root / "labels" / "img0.png")) and "\n" not in str(err.value)
    assert err.value.path == str(custom_root / "labels" / "img0.png")


def test_bad_options_are_value_errors(custom_root):
    with pytest.raises(ValueError, match="preprocess='crop'"):
        CustomFolder(custom_root, label_nc=4, preprocess="crop")
    with pytest.raises(ValueError, match="load_size=16 is smaller than crop_size=32"):
        CustomFolder(custom_root, label_nc=4, crop_size=32, load_size=16)
    with pytest.raises(ValueError, match="split='training'"):
        CustomFolder(custom_root, label_nc=4, split="training")


# ----- check_data collects every problem instead of stopping at the first
def test_check_data_reports_every_bad_file(custom_root):
    save_ids(custom_root / "labels" / "img0.png", stripes(24, 32, [0, 7]))
    (custom_root / "images" / "img2.jpg").write_text("junk")
    report = check_data(CustomFolder(custom_root, label_nc=4, crop_size=16))
    assert not report.ok and report.error_count == 2 and report.checked == 3
    text = report.format()
    assert "img0.png: label ids 7" in text and "img2.jpg: unreadable" in text
    assert report.histogram[:4] == [24 * 8, 24 * 8, 24 * 8, 24 * 8]  # only the good item, ids 0..3


def test_check_data_on_good_data(coco_root):
    report = check_data(CocoStuff(coco_root, crop_size=32), num_workers=1)
    assert report.ok and report.checked == 3 and report.sizes == {(48, 40): 3}
    assert (
        report.histogram[0]
        == report.histogram[5]
        == report.histogram[181]
        == report.histogram[182]
        == 3 * 40 * 12
    )
    text = report.format()
    assert "semantic_nc=184" in text and "don't care (255)" in text and "sky-other" not in text
    assert "person" in text and "179 of 182 classes never seen" in text


def test_check_data_warns_that_files_smaller_than_the_crop_are_upscaled(coco_root):
    report = check_data(CocoStuff(coco_root, crop_size=64))  # the files are 48x40
    assert report.ok and len(report.warnings) == 1
    text = report.format()
    assert "3 of 3 files are smaller than the 64x64 crop (48x40)" in text and "upscales them" in text
    assert check_data(CocoStuff(coco_root, crop_size=32)).warnings == []  # 48x40 covers a 32 crop
