"""The evaluation protocol end to end on a tiny run: exact counts, recorded protocol, caching, sharding."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from condgen.eval.evaluate import evaluate, shard

REPO = Path(__file__).resolve().parents[2]


@given(st.integers(0, 200), st.integers(1, 9))
def test_shards_cover_every_index_exactly_once(n, processes):
    parts = [shard(n, processes, r) for r in range(processes)]
    assert [i for p in parts for i in p] == list(range(n))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_segmenter_protocol_on_a_tiny_run(spade_run, tiny_segmenter, tmp_path):
    out = tmp_path / "m.json"
    rec = evaluate(
        spade_run,
        out=out,
        num_images=5,
        features="segmenter",
        segmenter=tiny_segmenter,
        cache=tmp_path / "cache",
        batch_size=2,
        kid_subsets=10,
    )
    m, p = rec["metrics"], rec["protocol"]
    assert json.loads(out.read_text())["metrics"] == m
    assert p["images"] == 5 and p["resolution"] == [32, 32] and p["split"] == "val" and p["seed"] == 0
    assert m["kid_subset_size"] == 5 and m["fid"] > 0
    assert 0 <= m["miou"] <= 1 and 0 <= m["real_miou"] <= 1 and len(m["per_class_iou"]) == 9
    assert p["features"]["name"] == "segmenter:landscape" and len(p["features"]["weights_sha256"]) == 64
    assert p["segmenter"]["input_size"] == [64, 64] and p["segmenter"]["recipe"]["steps"] == 4
    assert not p["real_features_cache"]["hit"] and p["meaningless"] == []
    assert "5 SyntheticLandscapes val images at 32x32" in rec["protocol_line"]
    again = evaluate(
        spade_run,
        out=tmp_path / "m2.json",
        num_images=5,
        features="segmenter",
        segmenter=tiny_segmenter,
        cache=tmp_path / "cache",
        batch_size=3,
        kid_subsets=10,
    )
    assert again["protocol"]["real_features_cache"]["hit"]
    for k in ("fid", "kid_mean", "miou", "real_miou"):  # batch size changes nothing
        assert again["metrics"][k] == pytest.approx(m[k], rel=1e-5, abs=1e-9), k


def test_inception_protocol_flags_random_weights_and_measures_diversity(vae_run, tmp_path):
    rec = evaluate(
        vae_run,
        num_images=2,
        random_inception=True,
        segmenter=None,
        cache=tmp_path,
        diversity_maps=1,
        diversity_samples=2,
        random_lpips=True,
        kid_subsets=5,
    )
    m, p = rec["metrics"], rec["protocol"]
    assert Path(rec["path"]) == vae_run / "eval" / "val_step2_inception.json"
    assert p["features"]["name"] == "inception-v3-compat" and p["features"]["weights_sha256"].startswith(
        "random"
    )
    assert len(p["meaningless"]) == 2 and "MEANINGLESS" in rec["protocol_line"]
    assert m["lpips_diversity"] > 0 and p["diversity"]["maps"] == 1 and "miou" not in m
    assert p["latent"] == "random"


def test_cli_reports_missing_inception_weights(spade_run, tmp_path, monkeypatch, capsys):
    from condgen.cli.main import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("CONDGEN_INCEPTION", raising=False)
    assert main(["eval", str(spade_run), "--num_images", "2", "--segmenter", "none"]) == 2
    err = capsys.readouterr().err
    assert "weights-inception-2015-12-05-6726825d.pth" in err and "github.com/toshas/torch-fidelity" in err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_give_the_single_process_numbers(spade_run, tiny_segmenter, tmp_path):
    """torchrun with 2 CPU processes (gloo): 5 images split 3 + 2, no padding, same metrics."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    script = tmp_path / "ev.py"
    recipe = tiny_segmenter.record["recipe"]
    seg_cache = str(Path(tiny_segmenter.record["weights_path"]).parent)
    script.write_text(
        "import sys\n"
        "from condgen.eval.evaluate import evaluate\n"
        "from condgen.eval.landscape_segmenter import LandscapeRecipe\n"
        "from condgen.eval.segmenters import load_segmenter\n"
        f"seg = load_segmenter('landscape', recipe=LandscapeRecipe(**{recipe!r}), cache={seg_cache!r})\n"
        "evaluate(sys.argv[1], out=sys.argv[2], num_images=5, features='segmenter', segmenter=seg,\n"
        "         cache=sys.argv[3], batch_size=2, kid_subsets=10)\n"
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        str(script),
        str(spade_run),
        str(tmp_path / "two.json"),
        str(tmp_path / "cache2"),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads((tmp_path / "two.json").read_text())
    one = evaluate(
        spade_run,
        out=tmp_path / "one.json",
        num_images=5,
        features="segmenter",
        segmenter=tiny_segmenter,
        cache=tmp_path / "cache1",
        batch_size=2,
        kid_subsets=10,
    )
    assert two["protocol"]["processes"] == 2 and two["protocol"]["images"] == 5
    for k in ("fid", "kid_mean", "miou", "pixel_accuracy", "real_miou"):
        assert two["metrics"][k] == pytest.approx(one["metrics"][k], rel=1e-5, abs=1e-9), k


def test_segmenter_feature_diversity_of_a_noise_model_from_the_cli(oasis_run, tmp_path, monkeypatch, capsys):
    """`--diversity_features segmenter` on a tiny OASIS: its own column, record and label, never LPIPS."""
    from condgen.cli.main import main

    monkeypatch.setenv("CONDGEN_CACHE", str(tmp_path / "cache"))
    recipe = [
        "load_segmenter.recipe = @LandscapeRecipe()",
        "LandscapeRecipe.train_images = 16",
        "LandscapeRecipe.steps = 4",
        "LandscapeRecipe.batch_size = 8",
        "LandscapeRecipe.width = 4",
        "LandscapeRecipe.val_images = 4",
    ]
    out = tmp_path / "m.json"
    argv = ["eval", str(oasis_run), "--num_images", "2", "--features", "segmenter", "--kid_subsets", "5"]
    argv += ["--diversity_maps", "2", "--diversity_samples", "3", "--diversity_features", "segmenter"]
    assert main([*argv, "--out", str(out), "--gin_bindings", *recipe]) == 0
    rec = json.loads(out.read_text())
    m, p = rec["metrics"], rec["protocol"]
    assert m["seg_diversity"] > 0 and "lpips_diversity" not in m
    d = p["seg_diversity"]
    assert d["maps"] == 2 and d["samples_per_map"] == 3 and d["metric"] == "seg_diversity"
    assert d["distance"]["name"] == "seg-feature-distance:landscape" and "NOT LPIPS" in d["distance"]["what"]
    assert d["distance"]["weights_sha256"] == p["features"]["weights_sha256"]
    assert p["latent"] == "3-D noise seeded per image" and p["meaningless"] == []
    assert {"key": "seg_diversity", "header": "seg-feature div.", "better": "higher", "scale": 1.0} in rec[
        "columns"
    ]
    assert not any(c["key"] == "lpips_diversity" for c in rec["columns"])
    again = tmp_path / "again.json"
    assert main([*argv, "--out", str(again), "--gin_bindings", *recipe]) == 0  # seeded: the same number
    assert json.loads(again.read_text())["metrics"]["seg_diversity"] == m["seg_diversity"]
    assert "seg_diversity" in capsys.readouterr().out
    line = rec["protocol_line"]
    assert "3-D noise seeded per image, seed 0" in line and "VAE latents" not in line
    assert "diversity seg_diversity (seg-feature-distance:landscape) over 2 maps x 3" in line
