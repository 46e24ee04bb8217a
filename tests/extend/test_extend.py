"""Extending condgen from outside the package, through gin alone: a toy objective and a toy metric.

The two modules beside this test are ordinary user files (no edit to condgen): a gin file imports them,
binds `train.objective = @ToyLSObjective`, and `condgen eval` binds `evaluate.metrics = [@MeanAbsDiff()]`.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TINY = REPO / "tests" / "train" / "tiny.gin"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "OMP_NUM_THREADS": "1",
    }
    out = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out


@pytest.mark.slow
def test_toy_objective_and_metric_through_gin_alone(tmp_path):
    toy = tmp_path / "toy.gin"
    toy.write_text("import toy_objective\ntrain.objective = @ToyLSObjective\nToyLSObjective.weight = 2.0\n")
    run_dir = tmp_path / "run"
    run(
        str(REPO / "experiments" / "run.py"),
        "--gin",
        str(TINY),
        "--gin",
        str(toy),
        "--run_dir",
        str(run_dir),
        "--gin_bindings",
        "train.max_steps = 2",
        cwd=tmp_path,
    )
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert {"G_toy", "D_toy_fake", "D_toy_real"} <= set(records[-1]) and "G_GAN" not in records[-1]
    assert "ToyLSObjective.weight = 2.0" in (run_dir / "config.gin").read_text()

    out = tmp_path / "toy_eval.json"
    run(
        "-m",
        "condgen",
        "eval",
        str(run_dir),
        "--num_images",
        "4",
        "--out",
        str(out),
        "--segmenter",
        "none",
        "--gin_bindings",
        "import toy_objective",  # the run's saved config imports it: condgen runs no saved imports itself
        "import toy_metric",
        "evaluate.metrics = [@MeanAbsDiff()]",
        "MeanAbsDiff.scale = 0.5",
        cwd=tmp_path,
    )
    rec = json.loads(out.read_text())
    assert set(rec["metrics"]) == {"mean_abs_diff", "mean_abs_diff_images", "generation_images_per_s"}
    assert rec["metrics"]["mean_abs_diff_images"] == 4 and 0 < rec["metrics"]["mean_abs_diff"] <= 1.0
    assert rec["protocol"]["metrics"] == ["MeanAbsDiff"] and rec["protocol"]["mean_abs_diff"] == {
        "scale": 0.5
    }
    assert rec["columns"] == [
        {"key": "mean_abs_diff", "header": "|fake - real|", "better": "lower", "scale": 1.0}
    ]


def test_toy_files_are_small():
    for name in ("toy_objective.py", "toy_metric.py"):
        assert len((HERE / name).read_text().splitlines()) < 40, name
