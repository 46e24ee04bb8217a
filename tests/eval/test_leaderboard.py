"""`condgen leaderboard`: a run and a foreign results folder under one protocol, the papers' reported rows,
a mixed-protocol table refused unless asked, and the output-folder rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from condgen.cli.leaderboard import main
from condgen.data.landscapes import export_landscapes
from condgen.eval.evaluate import evaluate, evaluate_images
from condgen.eval.metrics import FIDKID, SegmentationScore

N = 6


def _metrics() -> list:
    return [FIDKID(features="segmenter", kid_subsets=2), SegmentationScore()]


@pytest.fixture(scope="module")
def scored(spade_run, tiny_segmenter, tmp_path_factory) -> dict[str, Path]:
    """Metrics files: the tiny run and a results folder (noisy validation photos, official layout), both
    on the same N landscapes at 32 px; and the folder once more with one image fewer."""
    root = tmp_path_factory.mktemp("board")
    data = export_landscapes(root / "data", N, size=32, split="val")
    fake = root / "results" / "noisy_photos" / "test_latest" / "images" / "synthesized_image"
    fake.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for photo in sorted((data / "images").iterdir()):
        img = np.asarray(Image.open(photo), np.int16) + rng.integers(-30, 31, (32, 32, 3))
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(fake / photo.name)
    kw = dict(segmenter=tiny_segmenter, cache=root / "cache", batch_size=3)
    evaluate(spade_run, out=root / "run.json", num_images=N, metrics=_metrics(), **kw)
    folder = dict(labels=data / "labels", real=data / "images", dataset="SyntheticLandscapes", **kw)
    evaluate_images(root / "results" / "noisy_photos", out=root / "folder.json", metrics=_metrics(), **folder)
    (fake / sorted(p.name for p in fake.iterdir())[0]).unlink()
    evaluate_images(fake, out=root / "fewer.json", metrics=_metrics(), allow_missing=True, **folder)
    return {"run": root / "run.json", "folder": root / "folder.json", "fewer": root / "fewer.json"}


def test_one_protocol_table(scored, tmp_path, capsys):
    out = tmp_path / "board"
    assert main([str(scored["run"]), str(scored["folder"]), "--out", str(out)]) == 0
    md = (out / "leaderboard.md").read_text()
    assert (
        "| spade | re-scored (run) |" in md and "| noisy_photos | re-scored (images made elsewhere) |" in md
    )
    assert "FID ↓" in md and "mIoU ↑" in md and md.count("Protocol:") == 1
    assert "No paper reports numbers on SyntheticLandscapes" in md
    assert "<td>noisy_photos</td>" in (out / "leaderboard.html").read_text()
    assert main([str(scored["run"]), "--out", str(out)]) == 0  # condgen's own folder: may be rewritten


def test_mixed_protocols_refused_unless_asked(scored, tmp_path, capsys):
    files = [str(scored["run"]), str(scored["fewer"])]
    assert main([*files, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "2 protocols" in err and "images: 6 vs 5" in err and "--allow_mixed" in err
    assert not (tmp_path / "a").exists()
    assert main([*files, "--out", str(tmp_path / "b"), "--allow_mixed"]) == 0
    md = (tmp_path / "b" / "leaderboard.md").read_text()
    assert "Protocol P1:" in md and "Protocol P2:" in md and "not comparable" in md


def test_reported_rows_beside_rescored_ones(scored, tmp_path):
    record = json.loads(scored["run"].read_text())
    record["protocol"]["dataset"] = "ADE20K"  # as if the run had been scored on ADE20K
    (tmp_path / "ade.json").write_text(json.dumps(record))
    assert main([str(tmp_path / "ade.json"), "--out", str(tmp_path / "board")]) == 0
    md = (tmp_path / "board" / "leaderboard.md").read_text()
    for method, fid, miou in (
        ("SPADE", "33.9", "38.5"),
        ("CC-FPSE", "31.7", "43.7"),
        ("OASIS", "28.3", "48.8"),
    ):
        row = next(line for line in md.splitlines() if line.startswith(f"| {method} (reported) (ADE20K)"))
        assert "reported, own protocol" in row and f"| {fid} |" in row and f"| {miou} |" in row
    assert "CocoStuff" not in md


def test_output_folder_rule(scored, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main([str(scored["run"]), "--out", str(mine)]) == 2
    assert "not empty (notes.txt)" in capsys.readouterr().err and not (mine / "leaderboard.md").exists()
