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
