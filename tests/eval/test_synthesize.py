"""Synthesis from a run directory: determinism, samples, style guidance, the results layout."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from condgen.data.landscapes import export_landscapes
from condgen.eval.synthesize import latents, load_generator, synthesize_folder


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    root = export_landscapes(tmp_path_factory.mktemp("maps"), 3, size=32, split="val")
    return root / "labels", root / "images"


def pixels(path):
    return np.asarray(Image.open(path))


def test_latents_depend_only_on_seed_index_and_sample():
    a = latents(8, [0, 1, 2], seed=5)
    assert torch.equal(a[1:], latents(8, [1, 2], seed=5))  # batch composition does not matter
    assert not torch.equal(a, latents(8, [0, 1, 2], seed=6))
    assert not torch.equal(a, latents(8, [0, 1, 2], seed=5, sample=1))


def test_fixed_seed_gives_identical_outputs_in_the_official_layout(vae_run, maps, tmp_path):
    labels, _ = maps
    rec = synthesize_folder(vae_run, labels, tmp_path / "a", seed=1, samples=2)
    synthesize_folder(vae_run, labels, tmp_path / "b", seed=1, samples=2, batch_size=2)
    synthesize_folder(vae_run, labels, tmp_path / "c", seed=2, samples=2)
    assert rec["maps"] == 3 and len(rec["files"]) == 6
    for f in rec["files"]:
        assert np.array_equal(pixels(tmp_path / "a" / f), pixels(tmp_path / "b" / f)), f
    differ = [
        not np.array_equal(pixels(tmp_path / "a" / f), pixels(tmp_path / "c" / f)) for f in rec["files"]
    ]
    assert all(differ)
    a = tmp_path / "a" / "images" / "synthesized_image"
    assert not np.array_equal(pixels(a / "val_00000_s00.png"), pixels(a / "val_00000_s01.png"))
    assert (tmp_path / "a" / "images" / "input_label" / "val_00000.png").is_file()
    assert (tmp_path / "a" / "index.html").read_text().count("<tr>") == 3
    grid = pixels(tmp_path / "a" / "grid.png")
    assert grid.shape == (3 * 32 + 2 * 2, 3 * 32 + 2 * 2, 3)  # label | sample 0 | sample 1
    assert json.loads((tmp_path / "a" / "synthesis.json").read_text())["seed"] == 1


def test_style_guidance_uses_the_encoder(vae_run, maps, tmp_path):
    labels, images = maps
    style = sorted(images.iterdir())[0]
    rec = synthesize_folder(vae_run, labels, tmp_path / "s", style=style, samples=2)
    again = synthesize_folder(vae_run, labels, tmp_path / "t", style=style, samples=2)
    for f in rec["files"]:
        assert np.array_equal(pixels(tmp_path / "s" / f), pixels(tmp_path / "t" / f))
    assert pixels(tmp_path / "s" / "grid.png").shape[1] == 4 * 32 + 3 * 2  # label | style | 2 samples
    gan, _, _ = load_generator(vae_run)
    unguided = synthesize_folder(vae_run, labels, tmp_path / "u", samples=2)
    assert any(
        not np.array_equal(pixels(tmp_path / "s" / f), pixels(tmp_path / "u" / f)) for f in unguided["files"]
    )
    assert again["style"] == str(style) and gan.E is not None


def test_label_only_models_refuse_samples_and_style(spade_run, maps, tmp_path):
    labels, images = maps
    rec = synthesize_folder(spade_run, labels, tmp_path / "o")
    assert sorted(f.split("/")[-1] for f in rec["files"]) == [
        "val_00000.png",
        "val_00001.png",
        "val_00002.png",
    ]
    with pytest.raises(ValueError, match="takes no latent"):
        synthesize_folder(spade_run, labels, tmp_path / "x", samples=2)
    with pytest.raises(ValueError, match="style encoder"):
        synthesize_folder(spade_run, labels, tmp_path / "x", style=sorted(images.iterdir())[0])
    with pytest.raises(FileNotFoundError, match="no label maps"):
        synthesize_folder(spade_run, images.parent / "nothing", tmp_path / "x")


def test_cli_writes_the_same_images(spade_run, maps, tmp_path):
    from experiments.synthesize import main

    labels, _ = maps
    assert main(["--run", str(spade_run), "--labels", str(labels), "--out", str(tmp_path / "cli")]) == 0
    ref = synthesize_folder(spade_run, labels, tmp_path / "ref")
    for f in ref["files"]:
        assert np.array_equal(pixels(tmp_path / "cli" / f), pixels(tmp_path / "ref" / f))
    assert (
        main(
            ["--run", str(spade_run), "--labels", str(labels), "--out", str(tmp_path / "x"), "--samples", "3"]
        )
        == 2
    )


def test_synthesize_out_never_writes_among_the_users_files(spade_run, maps, tmp_path, capsys):
    from condgen.cli.synthesize import main

    labels, _ = maps
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("index.html", "grid.png", "report.md"):
        (mine / name).write_text(f"my {name}\n")
    assert main(["--run", str(spade_run), "--labels", str(labels), "--out", str(mine)]) == 2
    assert "is a folder that is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["grid.png", "index.html", "report.md"]
    assert (mine / "index.html").read_text() == "my index.html\n"
    out = tmp_path / "out"  # a failure (here: samples of a label-only model) leaves no folder behind
    assert main(["--run", str(spade_run), "--labels", str(labels), "--out", str(out), "--samples", "3"]) == 2
    assert not out.exists()
    for _ in range(2):  # its own folder: written again
        assert main(["--run", str(spade_run), "--labels", str(labels), "--out", str(out)]) == 0
    assert (out / "index.html").is_file() and (out / ".condgen-output").is_file()


def test_converted_official_folder_loads(tmp_path):
    from condgen.convert.export import official_config_gin, write_run_dir
    from condgen.convert.official import load_official, parse_official_flags

    flags = "--dataset_mode custom --label_nc 9 --no_instance --crop_size 32 --load_size 32 --ngf 4"
    cfg = parse_official_flags("spade", flags)
    nets = load_official("spade", flags)
    out = write_run_dir(
        tmp_path / "official", nets, official_config_gin(cfg, flags), cfg.spec, {"repo": "spade"}
    )
    gan, spec, info = load_generator(out)
    assert info["kind"] == "converted official" and spec.crop_size == 32 and spec.semantic_nc == 9
    for k, v in nets["G"].state_dict().items():
        assert torch.equal(v, gan.G.state_dict()[k]), k


def test_noise_model_samples_per_map_from_the_cli(oasis_run, maps, tmp_path):
    """3-D noise (OASIS): N files per map with different noise, seeded, the same through the CLI."""
    from condgen.cli.main import main

    labels, _ = maps
    argv = ["synthesize", "--run", str(oasis_run), "--labels", str(labels), "--samples_per_map", "3"]
    assert main([*argv, "--out", str(tmp_path / "cli"), "--seed", "4"]) == 0
    rec = synthesize_folder(oasis_run, labels, tmp_path / "api", samples=3, seed=4, batch_size=2)
    assert rec["latent"] == "3-D noise" and len(rec["files"]) == 9 and rec["resample_class"] is None
    for f in rec["files"]:
        assert np.array_equal(pixels(tmp_path / "cli" / f), pixels(tmp_path / "api" / f)), f
    out = tmp_path / "api" / "images" / "synthesized_image"
    for name in ("val_00000", "val_00001", "val_00002"):
        s = [pixels(out / f"{name}_s{k:02d}.png") for k in range(3)]
        assert s[0].shape == (64, 64, 3)
        assert not np.array_equal(s[0], s[1]) and not np.array_equal(s[1], s[2])
    other = synthesize_folder(oasis_run, labels, tmp_path / "seed5", samples=3, seed=5)
    assert any(
        not np.array_equal(pixels(tmp_path / "api" / f), pixels(tmp_path / "seed5" / f))
        for f in other["files"]
    )


def test_local_resampling_redraws_only_where_the_class_is(oasis_run, maps, tmp_path, monkeypatch):
    import condgen.infer.resample as resample

    labels, _ = maps
    real_local_resample = resample.local_resample
    redrawn = []  # per local_resample call: changed pixels of the noise map (b, H, W), class region, image

    def recording(G, seg, z, channel, new_z=None):
        image, noise = real_local_resample(G, seg, z, channel, new_z=new_z)
        old = resample._noise_source(G).noise_map(seg, z)
        redrawn.append(((noise != old).any(1), seg[:, channel] > 0.5, image))
        return image, noise

    monkeypatch.setattr(resample, "local_resample", recording)
    present = {f.stem: set(np.unique(np.asarray(Image.open(f)))) for f in sorted(labels.iterdir())}
    # a class some maps lack, so that both branches below run
    partial = [c for c in range(9) if 0 < sum(c in p for p in present.values()) < len(present)]
    cls = min(partial)
    rec = synthesize_folder(oasis_run, labels, tmp_path / "r", samples=3, resample_class=str(cls),
                            batch_size=2)
    r = rec["resample_class"]
    assert r["id"] == cls and r["maps_without_it"] == [n for n, p in present.items() if cls not in p]
    plain = synthesize_folder(oasis_run, labels, tmp_path / "p", samples=1)
    out = tmp_path / "r" / "images" / "synthesized_image"
    for name, classes in present.items():
        s = [pixels(out / f"{name}_s{k:02d}.png") for k in range(3)]
        # sample 0 is the map's ordinary (seeded) image
        assert np.array_equal(s[0], pixels(tmp_path / "p" / "images" / "synthesized_image" / f"{name}.png"))
        if cls not in classes:  # no region: nothing to redraw
            assert np.array_equal(s[0], s[1]) and np.array_equal(s[0], s[2])
    # the noise changed exactly on the class's pixels, and samples 1 and 2 of a map that has the class differ,
    # compared before 8-bit rounding (a 2-step model paints nearly flat grey: a small region's new noise may
    # not move any pixel by one 8-bit step)
    assert len(redrawn) == 2 * len(range(0, len(present), 2)) and any(bool(r.any()) for _, r, _ in redrawn)
    for changed, region, _ in redrawn:
        assert torch.equal(changed, region)
    for (_, region, first), (_, _, second) in zip(redrawn[0::2], redrawn[1::2], strict=True):
        for row in region.flatten(1).any(1).nonzero().flatten().tolist():
            assert not torch.equal(first[row], second[row])
    assert plain["latent"] == "3-D noise"
    named = synthesize_folder(oasis_run, labels, tmp_path / "n", samples=2, resample_class="sky")
    assert named["resample_class"]["id"] == 0 and named["resample_class"]["name"] == "sky"


def test_resampling_needs_a_latent_and_says_so(spade_run, vae_run, oasis_run, maps, tmp_path):
    from condgen.cli.main import main

    labels, _ = maps
    with pytest.raises(ValueError, match="needs a generator with 3-D noise .* or a VAE"):
        synthesize_folder(spade_run, labels, tmp_path / "x", samples=2)
    with pytest.raises(ValueError, match="local resampling .* 3-D noise"):
        synthesize_folder(spade_run, labels, tmp_path / "x", samples=2, resample_class=0)
    with pytest.raises(ValueError, match="VAE latent, one vector for the whole image"):
        synthesize_folder(vae_run, labels, tmp_path / "x", samples=2, resample_class=0)
    with pytest.raises(ValueError, match="--samples N >= 2"):
        synthesize_folder(oasis_run, labels, tmp_path / "x", resample_class=0)
    with pytest.raises(ValueError, match="class ids of this model are 0..8"):
        synthesize_folder(oasis_run, labels, tmp_path / "x", samples=2, resample_class=9)
    with pytest.raises(ValueError, match="classes: sky, cloud"):
        synthesize_folder(oasis_run, labels, tmp_path / "x", samples=2, resample_class="lava")
    argv = ["synthesize", "--run", str(spade_run), "--labels", str(labels), "--out", str(tmp_path / "x")]
    assert main([*argv, "--samples", "2", "--resample_class", "1"]) == 2
