"""`condgen eval` on a fresh machine: no cached segmenter, an empty cache folder (XDG_CACHE_HOME).

The first evaluation trains the landscape segmenter inside `evaluate()`'s `no_grad`; that crashed with
"element 0 of tensors does not require grad" while the suite's session fixture hid it with a cached one.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QUICK_RECIPE = [
    "load_segmenter.recipe = @LandscapeRecipe()",
    "LandscapeRecipe.steps = 4",
    "LandscapeRecipe.train_images = 16",
    "LandscapeRecipe.width = 4",
    "LandscapeRecipe.val_images = 4",
]


@pytest.mark.slow
def test_eval_on_a_fresh_cache_trains_the_segmenter_and_scores(spade_run, tmp_path):
    cache = tmp_path / "xdg"
    env = {k: v for k, v in os.environ.items() if k != "CONDGEN_CACHE"}
    env |= {"XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "metrics.json"
    cmd = [
        sys.executable,
        "-m",
        "condgen",
        "eval",
        str(spade_run),
        "--num_images",
        "4",
        "--random_inception",
        "--kid_subset_size",
        "2",
        "--out",
        str(out),
        "--gin_bindings",
        *QUICK_RECIPE,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    rec = json.loads(out.read_text())
    assert 0 <= rec["metrics"]["miou"] <= 1 and "real_miou" in rec["metrics"]
    assert list((cache / "condgen").rglob("*.safetensors")), "the segmenter was cached under XDG_CACHE_HOME"


def test_a_missing_inception_names_the_segmenter_features_and_the_fetch_command(spade_run, tmp_path,
                                                                                  monkeypatch, capsys):
    """A fresh machine has no Inception file: on the landscapes the error says that --features segmenter
    needs none, and how to fetch the Inception."""
    from condgen.cli.eval import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for name in ("CONDGEN_INCEPTION", "CONDGEN_FID_INCEPTION"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "m.json"
    code = main([str(spade_run), "--num_images", "2", "--segmenter", "none", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Inception" in err
    assert "--features segmenter" in err and "condgen weights fetch inception" in err.splitlines()[-1]
    assert not out.exists()


def test_training_the_landscape_segmenter_says_what_and_how_long_with_a_bar(tmp_path, capsys, caplog):
    from condgen.eval.landscape_segmenter import LandscapeRecipe, landscape_segmenter

    recipe = LandscapeRecipe(steps=3, train_images=8, batch_size=4, width=2, val_images=2, size=32)
    with caplog.at_level("WARNING", logger="condgen.eval"):
        landscape_segmenter(recipe, cache=tmp_path)
    said = caplog.text
    assert "training the landscape segmenter once: 3 steps" in said
    assert "about" in said and "cached at" in said
    assert "trained the landscape segmenter in" in said
    bar = capsys.readouterr().err
    assert "landscape segmenter" in bar and "3/3" in bar and "<" in bar  # tqdm: done/total [elapsed<ETA]
    caplog.clear()
    with caplog.at_level("WARNING", logger="condgen.eval"):
        landscape_segmenter(recipe, cache=tmp_path)  # cached: silent
    assert "training" not in caplog.text and "3/3" not in capsys.readouterr().err
