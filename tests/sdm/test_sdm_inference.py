"""SDM wherever a generator is used: the pipeline (steps, seeded per image), `condgen synthesize` (--steps,
--sampler, --guidance, recorded in synthesis.json), the evaluation protocol's sampler fields; a released
checkpoint converted by the fixture's state dict serves as the model."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from condgen.cli.synthesize import main as synthesize
from condgen.convert.__main__ import main as convert
from condgen.eval.evaluate import protocol_line
from condgen.infer import SynthesisPipeline
from tests.sdm.test_convert_sdm import TINY_FLAGS


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, original_state):
    root = tmp_path_factory.mktemp("sdm")
    (root / "released").mkdir()
    torch.save(original_state["UNet"], root / "released" / "ema_0.9999_000001.pt")
    assert convert(["sdm", "--flags", TINY_FLAGS, "--checkpoint_dir", str(root / "released"),
                    "--out", str(root / "run")]) == 0
    return root / "run"


def test_pipeline_samples_with_steps_and_per_image_seeds(run_dir):
    pipe = SynthesisPipeline.from_pretrained(run_dir)
    assert pipe.latent.name == "diffusion" and pipe.G.guidance == 1.5  # the README's sampler, from the run
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 12, (2, 16, 16), generator=g)
    inst = torch.randint(0, 3, (2, 16, 16), generator=g)
    pipe.spec = type(pipe.spec)(**{**pipe.spec.__dict__, "crop_size": 16})  # a 16 x 16 test size
    a = pipe(labels, instance=inst, steps=2, seed=0, output_type="pt")
    b = pipe(labels[1:], instance=inst[1:], steps=2, seed=0, output_type="pt")
    c = pipe(labels, instance=inst, steps=2, seed=1, output_type="pt")
    assert a.shape == (2, 1, 3, 16, 16) and torch.isfinite(a).all()
    assert not torch.allclose(a, c)  # another seed, other noise
    alone = pipe(labels[:1], instance=inst[:1], steps=2, seed=0, output_type="pt")
    # image 0 of a batch is image 0 alone (up to round-off, which x_0's prediction amplifies ~150x at t = 999)
    assert torch.allclose(a[0], alone[0], atol=1e-3)
    assert b.shape == (1, 1, 3, 16, 16)


def test_synthesize_records_the_sampler(run_dir, tmp_path):
    maps = tmp_path / "maps"
    (maps / "labels").mkdir(parents=True)
    (maps / "instances").mkdir()
    for i in range(2):
        Image.fromarray(np.full((32, 32), i + 3, np.uint8)).save(maps / "labels" / f"m{i}.png")
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(maps / "instances" / f"m{i}.png")
    out = tmp_path / "out"
    argv = ["--run", str(run_dir), "--labels", str(maps / "labels"), "--instances", str(maps / "instances"),
            "--out", str(out), "--steps", "2", "--sampler", "ddim", "--guidance", "1.0", "--device", "cpu"]
    assert synthesize(argv) == 0
    record = json.loads((out / "synthesis.json").read_text())
    assert record["sampler"] == {"steps": 2, "method": "ddim", "guidance": 1.0, "eta": 0.0}
    assert len(record["files"]) == 2


def test_sampler_flags_are_refused_for_gans_and_recorded_in_the_protocol_line():
    from argparse import Namespace

    from condgen.infer.diffusion import sampler_options

    with pytest.raises(ValueError, match="--steps: only diffusion models"):
        sampler_options(Namespace(steps=25, sampler=None, guidance=None), torch.nn.Conv2d(1, 1, 1))
    line = protocol_line({"dataset": "X", "split": "val", "images": 2, "resolution": [32, 32], "seed": 0,
                          "real_resize_filter": "bicubic", "latent_policy": "random",
                          "sampler": {"steps": 25, "method": "ddim", "guidance": 1.5, "eta": 0.0}})
    assert "DDIM-25 sampling, guidance 1.5" in line


def test_painter_samples_in_the_steps_given(tmp_path, capsys):
    """`condgen paint --steps 2 --sampler ddim`: a tiny SDM trained one step paints a map over HTTP."""
    pytest.importorskip("uvicorn")
    from condgen.cli.gin_setup import parse_gin
    from condgen.cli.paint import main as paint
    from condgen.train.loop import train
    from tests.sdm.test_train_sdm import TINY

    parse_gin([TINY], ["train.max_steps = 1", "train.sample_every = None", "train.save_every = 1"])
    train(tmp_path / "run")
    assert paint(["--run", str(tmp_path / "run"), "--check", "--port", "0", "--steps", "2",
                  "--sampler", "ddim"]) == 0
    assert "check ok" in capsys.readouterr().out
