"""`python -m condgen.convert clade|dpgan` round trip: original-layout checkpoints -> a run dir -> `load_run`.

The compact fixtures' original state dicts (original key names) are saved as the released files
(`latest_net_{G,D}.pth` for CLADE, `models/latest_{G,D}.pth` for DP-GAN); the converted run directory must
rebuild the same networks through its config.gin (bitwise equal to a direct load) and give the original's
outputs within the fixture tolerance, and load as a pipeline (`condgen.load`). A checkpoint with a key
missing is refused, naming the key.
"""

import pytest
import torch

import condgen
from condgen.convert.__main__ import main as convert_main
from condgen.convert.oasis import load_oasis
from condgen.convert.official import load_official
from condgen.train.state import load_run
from tests.clade_dpgan.conftest import load_fixture, rel, state
from tests.clade_dpgan.test_clade_parity import image_error
from tests.clade_dpgan.test_clade_parity import seg_of as clade_seg
from tests.clade_dpgan.test_dpgan_parity import TINY as DPGAN_FLAGS
from tests.clade_dpgan.test_dpgan_parity import seg_of as dpgan_seg

OUT_TOL = 1e-4


def same_state(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    for k, v in sa.items():
        assert torch.equal(v, sb[k]), k


@pytest.mark.parametrize("name", ["clade", "clade_icpe"])
@torch.no_grad()
def test_clade_round_trip(name, tmp_path, capsys):
    cfg = load_fixture("clade/clade_compact.pt")["configs"][name]
    flags = " ".join(cfg["argv"])
    states = {n: state(cfg[n]) for n in ("G", "D")}
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    for n, sd in states.items():
        torch.save(sd, ckpt / f"latest_net_{n}.pth")
    out = tmp_path / "run"
    assert convert_main(["clade", "--flags", flags, "--checkpoint_dir", str(ckpt), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    gan, spec, _ = load_run(out)
    assert type(gan.G).__name__ == ("CLADEICPEGenerator" if "icpe" in name else "CLADEGenerator")
    assert spec.instance_edges == (name == "clade")
    direct = load_official("clade", flags, **states)
    same_state(gan.G, direct["G"])
    same_state(gan.D, direct["D"])
    fake = gan.G(clade_seg(cfg))  # the ICPE map is computed on the fly from the label map
    assert image_error(fake, cfg["fake_eval"]) <= OUT_TOL
    if name == "clade_icpe":  # `condgen.load` of the converted folder: the pipeline encodes class ids itself
        pipe = condgen.load(out)
        ids = cfg["label"][:, 0].long().clamp(max=11)
        images = pipe(ids, output_type="pt")
        assert images.shape == (2, 1, 3, 64, 128)
        assert torch.allclose(images[:, 0], gan.G(pipe.encode(ids)), atol=1e-5)

    del states["G"]["up_0.norm_s.class_specified_affine.weight"]
    torch.save(states["G"], ckpt / "latest_net_G.pth")
    with pytest.raises(ValueError, match="missing.*up_0.norm_s.class_specified_affine.weight"):
        convert_main(["clade", "--flags", flags, "--checkpoint_dir", str(ckpt), "--out", str(tmp_path / "x")])


@torch.no_grad()
def test_dpgan_round_trip(tmp_path, capsys):
    fx = load_fixture("dpgan/dpgan_compact.pt")
    states = {n: state(fx[n]) for n in ("G", "D")}
    models = tmp_path / "checkpoints" / "dpgan_tiny" / "models"
    models.mkdir(parents=True)
    for n, sd in states.items():
        torch.save(sd, models / f"latest_{n}.pth")
    out = tmp_path / "run"
    argv = ["dpgan", "--flags", DPGAN_FLAGS, "--checkpoint_dir", str(models.parent), "--out", str(out)]
    assert convert_main(argv) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    gan, spec, _ = load_run(out)
    assert (type(gan.G).__name__, type(gan.D).__name__) == ("DPGANGenerator", "DPGANDiscriminator")
    direct = load_oasis(DPGAN_FLAGS, **states, repo="dpgan")
    same_state(gan.G, direct["G"])
    same_state(gan.D, direct["D"])
    # ADE20K's don't-care is channel 0 in both orders: the original's outputs apply as they are
    assert rel(gan.G(dpgan_seg(fx), fx["z"]), fx["fake_eval"]) <= 5e-4
    images = condgen.load(out)(fx["label"][:, 0].long(), samples=2, output_type="pt")  # 3-D noise
    assert images.shape == (2, 2, 3, 64, 128) and not torch.equal(images[:, 0], images[:, 1])

    states["D"]["dis.1.11.bias"] = torch.zeros(2)
    torch.save(states["D"], models / "latest_D.pth")
    with pytest.raises(ValueError, match=r"dis\.1\.11\.bias"):
        convert_main([*argv[:-1], str(tmp_path / "x")])


def test_registered_names_say_how_to_convert(tmp_path, monkeypatch):
    from condgen.infer.pretrained import MODELS

    monkeypatch.setenv("CONDGEN_CACHE", str(tmp_path))
    assert "--norm_mode clade --add_dist" in MODELS["clade-icpe-ade20k"].convert_command()
    assert MODELS["dpgan-cityscapes"].reported == {"FID": 44.1, "mIoU": 73.6}
    assert "dpgan-coco" not in MODELS  # DP-GAN released no COCO-Stuff model
    with pytest.raises(FileNotFoundError, match="python -m condgen.convert dpgan"):
        condgen.load("dpgan-ade20k")
