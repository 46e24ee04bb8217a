"""Style per region in the inference pipeline and `condgen synthesize`: a default photo, classes styled from
other photos, style files written and read back, one region interpolated between two styles."""

import numpy as np
import pytest
import torch
from PIL import Image

from condgen.cli.synthesize import main as synthesize
from condgen.data.landscapes import landscape
from condgen.infer import SynthesisPipeline
from condgen.networks.region_styles import interpolate
from tests.paint.conftest import make_sean_run


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A random-weight tiny SEAN run (64 px landscapes), two photos with their label maps, a label folder."""
    base = tmp_path_factory.mktemp("sean_pipe")
    run = make_sean_run(base)
    out = {"run": run, "labels": base / "labels"}
    out["labels"].mkdir()
    for i in (0, 1):
        scene = landscape(0, i, 64, 64, split="val")
        Image.fromarray(scene["image"]).save(base / f"photo{i}.png")
        Image.fromarray(scene["label"].astype(np.uint8)).save(base / f"ids{i}.png")
        out[f"photo{i}"], out[f"ids{i}"] = base / f"photo{i}.png", base / f"ids{i}.png"
    ids0 = landscape(0, 0, 64, 64, split="val")["label"].astype(np.uint8)
    Image.fromarray(ids0).save(out["labels"] / "a.png")
    return out


def test_pipeline_styles_one_region_from_another_photo(files):
    pipe = SynthesisPipeline.from_run(files["run"])
    assert pipe.latent.name == "region_styles"
    labels = files["ids0"]
    own = pipe(labels, style=files["photo0"], seed=1, output_type="np")
    again = pipe(labels, style=files["photo0"], seed=1, output_type="np")
    assert np.array_equal(own, again)  # the seed fixes the per-pixel noise
    sky = pipe(labels, style=files["photo0"], region_styles={"sky": (files["photo1"], files["ids1"])},
               seed=1, output_type="np")
    assert not np.array_equal(own, sky)
    with pytest.raises(ValueError, match="not a class of this model"):
        pipe(labels, region_styles={"skyy": files["photo1"]})
    with pytest.raises(ValueError, match="no 'sand' region"):  # photo 1 shows no sand
        pipe(labels, region_styles={"sand": (files["photo1"], files["ids1"])})


def test_interpolating_one_region(files):
    pipe = SynthesisPipeline.from_run(files["run"])
    seg = pipe.encode(pipe.read_labels(files["ids0"])[1])
    a = pipe.G.encode_style(pipe_photo(files["photo0"]), seg)[0]
    seg1 = pipe.encode(pipe.read_labels(files["ids1"])[1])
    b = pipe.G.encode_style(pipe_photo(files["photo1"]), seg1)[0]
    sky = pipe.dataset.class_id("sky")
    ends = [pipe(files["ids0"], style=a, region_styles={"sky": interpolate(a[sky], b[sky], t)}, seed=2,
                 output_type="pt") for t in (0.0, 0.5, 1.0)]
    assert torch.equal(ends[0], pipe(files["ids0"], style=a, seed=2, output_type="pt"))
    assert not torch.equal(ends[0], ends[1]) and not torch.equal(ends[1], ends[2])


def pipe_photo(path) -> torch.Tensor:
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    return torch.from_numpy(rgb).permute(2, 0, 1)[None] / 127.5 - 1


def test_synthesize_cli_region_style_and_style_files(files, tmp_path):
    common = ["--run", str(files["run"]), "--labels", str(files["labels"]), "--device", "cpu"]
    look = tmp_path / "look.safetensors"
    assert synthesize([*common, "--style", str(files["photo0"]), "--region_style", f"sky={files['photo1']}",
                       "--save_style", str(look), "--out", str(tmp_path / "a")]) == 0
    assert look.is_file()
    assert synthesize([*common, "--style", str(look), "--out", str(tmp_path / "b")]) == 0
    first = np.asarray(Image.open(tmp_path / "a" / "images" / "synthesized_image" / "a.png"))
    again = np.asarray(Image.open(tmp_path / "b" / "images" / "synthesized_image" / "a.png"))
    assert np.array_equal(first, again)  # the saved look reproduces the image
    assert synthesize([*common, "--region_style", "sky", "--out", str(tmp_path / "c")]) == 2

