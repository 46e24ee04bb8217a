"""`condgen eval --images`: a results folder made elsewhere (official layout, one file missing), paired by
name with label maps and real photos, scored under the same protocol record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from condgen.cli.eval import main
from condgen.data.landscapes import export_landscapes
from condgen.eval.evaluate import evaluate_images
from condgen.eval.foreign import ForeignImages, PairingError


@pytest.fixture(scope="module")
def official_results(tmp_path_factory) -> dict[str, Path]:
    """8 landscape label maps and photos; 'generated' images (noisy photos) in the official SPADE test
    layout, one of them missing."""
    root = tmp_path_factory.mktemp("foreign")
    data = export_landscapes(root / "data", 8, size=32, split="val")
    fake_dir = root / "results" / "landscape_spade" / "test_latest" / "images" / "synthesized_image"
    fake_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for photo in sorted((data / "images").iterdir())[1:]:  # the first one is missing
        img = np.asarray(Image.open(photo), np.int16) + rng.integers(-40, 41, (32, 32, 3))
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(fake_dir / photo.name)
    return {
        "results": root / "results" / "landscape_spade",
        "labels": data / "labels",
        "real": data / "images",
        "fake_dir": fake_dir,
        "missing": sorted((data / "images").iterdir())[0].stem,
    }


def test_missing_file_is_reported_by_name(official_results, tmp_path, capsys):
    r = official_results
    argv = [
        "--images",
        str(r["results"]),
        "--labels",
        str(r["labels"]),
        "--real",
        str(r["real"]),
        "--dataset",
        "SyntheticLandscapes",
        "--segmenter",
        "none",
        "--out",
        str(tmp_path / "m.json"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert repr(r["missing"]) in err and "--allow_missing" in err and not (tmp_path / "m.json").exists()


def test_official_layout_scored_with_segmenter_features(official_results, tiny_segmenter, tmp_path):
    from condgen.eval.metrics import FIDKID, DensityCoverage, PrecisionRecall, SegmentationScore

    r = official_results
    metrics = [
        FIDKID(features="segmenter", kid_subsets=3),
        SegmentationScore(),
        PrecisionRecall(features="segmenter"),
        DensityCoverage(features="segmenter"),
    ]
    rec = evaluate_images(
        r["results"],
        labels=r["labels"],
        real=r["real"],
        dataset="SyntheticLandscapes",
        allow_missing=True,
        metrics=metrics,
        segmenter=tiny_segmenter,
        cache=tmp_path,
        out=tmp_path / "m.json",
        batch_size=4,
    )
    m, p = rec["metrics"], rec["protocol"]
    assert p["images"] == 7 and p["resolution"] == [32, 32]
    assert p["source"]["layout"].startswith("official (test_latest") and p["source"]["missing"] == [
        r["missing"]
    ]
    assert p["source"]["generated"] == str(r["fake_dir"]) and p["meaningless"] == []
    assert m["fid"] > 0 and 0 <= m["miou"] <= 1 and 0 <= m["real_miou"] <= 1
    assert 0 <= m["precision"] <= 1 and 0 <= m["coverage"] <= 1
    assert (
        "made elsewhere (official" in rec["protocol_line"]
        and "1 label maps without an image" in rec["protocol_line"]
    )
    assert json.loads((tmp_path / "m.json").read_text())["metrics"]["fid"] == m["fid"]


def test_without_real_photos_only_the_segmentation_score(official_results, tiny_segmenter, tmp_path):
    r = official_results
    rec = evaluate_images(
        r["fake_dir"],
        labels=r["labels"],
        dataset="SyntheticLandscapes",
        allow_missing=True,
        segmenter=tiny_segmenter,
        out=tmp_path / "m.json",
        random_inception=True,
    )
    assert "miou" in rec["metrics"] and "real_miou" not in rec["metrics"] and "fid" not in rec["metrics"]
    assert rec["protocol"]["source"]["layout"] == "flat folder"


def test_sizes_and_names_are_checked(official_results, tmp_path):
    r = official_results
    odd = tmp_path / "samples"  # SDM's layout
    odd.mkdir()
    for i, f in enumerate(sorted(r["fake_dir"].iterdir())):
        Image.open(f).resize((32, 32) if i else (48, 48)).save(odd / f.name)
    with pytest.raises(PairingError, match="differ in size.*score one resolution"):
        ForeignImages(tmp_path, r["labels"], label_nc=9, allow_missing=True)
    (odd / "not_a_label.png").write_bytes(
        (r["fake_dir"] / sorted(p.name for p in odd.iterdir())[0]).read_bytes()
    )
    with pytest.raises(PairingError, match="'not_a_label'.*no label map"):
        ForeignImages(tmp_path, r["labels"], label_nc=9)


def test_non_square_data_is_squashed_as_the_official_resize_does(official_results, tmp_path):
    """COCO-Stuff / ADE20K results are square images of non-square photos: the official preprocessing
    resizes both sides; so does the pairing (recorded). A photo of another size than its label map is an
    error naming both files."""
    r = official_results
    labels, real = tmp_path / "labels", tmp_path / "real"
    labels.mkdir(), real.mkdir()
    for f in sorted(r["fake_dir"].iterdir()):
        Image.open(r["labels"] / f.name).resize((48, 32), Image.NEAREST).save(labels / f.name)
        Image.open(r["real"] / f.name).resize((48, 32)).save(real / f.name)
    ds = ForeignImages(r["fake_dir"], labels, real, label_nc=9)
    assert "aspect ratio changed" in ds.preprocess and ds.spec.size == (32, 32)
    item = ds[0]
    assert item["label"].shape == (1, 32, 32) and item["image"].shape == item["fake"].shape == (3, 32, 32)
    Image.open(real / f.name).resize((40, 32)).save(real / f.name)
    with pytest.raises(PairingError, match=f"{f.stem}.png is 48x32 but its photo .* is 40x32"):
        ForeignImages(r["fake_dir"], labels, real, label_nc=9)
