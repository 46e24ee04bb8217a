"""`python -m condgen.convert oasis` round trip: original-layout checkpoints -> a run dir -> `load_run`.

The original-layout state dicts are the parity fixture's (its recipe rebuilds the parameters; the key
layout is what the original's `torch.save(net.state_dict())` writes), saved as the released files
`checkpoints/<name>/models/latest_{G,D,EMA}.pth`. The converted run dir must give the same networks as a
direct `load_oasis` of those files (bitwise), and the original's own outputs within the fixture's
tolerance. The COCO layout is used so that the label-channel permutation (don't-care first -> last) is
part of the round trip.
"""

import json

import pytest
import torch

from condgen.convert.__main__ import main as convert_main
from condgen.convert.oasis import load_oasis
from condgen.data.oasis_labels import from_oasis, oasis_to_condgen
from condgen.train.state import load_run

FLAGS = "--dataset_mode coco --label_nc 12 --channels_G 16 --crop_size 128 --aspect_ratio 2.0"
OUT_TOL = 1e-4  # fixture README section 8: max |diff| / std(reference)


def rel(ours, ref) -> float:
    return ((ours.double() - ref.double()).abs().max() / ref.double().std()).item()


@pytest.fixture(scope="module")
def official(oasis_fx, oasis_recipe, tmp_path_factory):
    """The fixture's G and D as released files, and an EMA generator (G's parameters halved: exact)."""
    r = oasis_recipe
    states = {n: r.build_state_dict(oasis_fx[n]["recipe"], oasis_fx[n]["buffers"]) for n in ("G", "D")}
    params = set(oasis_fx["G"]["recipe"])
    states["EMA"] = {k: v * 0.5 if k in params else v.clone() for k, v in states["G"].items()}
    models = tmp_path_factory.mktemp("checkpoints") / "parity_tiny" / "models"
    models.mkdir(parents=True)
    for n, sd in states.items():
        torch.save(sd, models / f"latest_{n}.pth")
    return {"states": states, "models": models, "dir": models.parent}


def inputs(fx):
    """condgen-order label map (don't-care last), the fixture's noise and real image."""
    return from_oasis(fx["label_onehot"], 12), fx["z"], fx["image"]


def d_in_condgen_order(d_oasis):
    """The original D's logits with the head channels in condgen's order ("fake" stays channel 0)."""
    perm = torch.tensor(oasis_to_condgen(13, 12))
    return torch.cat([d_oasis[:, :1], d_oasis[:, 1:][:, perm]], 1)


def convert(tmp_path, models_dir, capsys, name="run"):
    out = tmp_path / name
    argv = ["oasis", "--flags", FLAGS, "--checkpoint_dir", str(models_dir), "--out", str(out)]
    assert convert_main(argv) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    return out


def same_state(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    for k, v in sa.items():
        assert torch.equal(v, sb[k]), k


@torch.no_grad()
def test_g_and_d_round_trip(official, oasis_fx, tmp_path, capsys):
    models = official["models"]
    (models / "latest_EMA.pth").rename(models / "EMA.hidden")  # a run saved without EMA
    try:
        out = convert(tmp_path, official["dir"], capsys)  # the checkpoint folder; models/ is found
    finally:
        (models / "EMA.hidden").rename(models / "latest_EMA.pth")
    meta = json.loads((out / "convert.json").read_text())
    assert meta["G_is"] == "G" and set(meta["loaded"]) == {"G", "D"}

    direct = load_oasis(FLAGS, G=official["states"]["G"], D=official["states"]["D"])
    gan, spec, info = load_run(out)
    assert info["kind"] == "converted official" and spec.semantic_nc == 13 and spec.size == (64, 128)
    assert gan.E is None and type(gan.G).__name__ == "OASISGenerator"
    same_state(gan.G, direct["G"])
    same_state(gan.D, direct["D"])
    seg, z, image = inputs(oasis_fx)
    fake = gan.G(seg, z)
    assert torch.equal(fake, direct["G"](seg, z))
    assert rel(fake, oasis_fx["fake_eval"]) <= OUT_TOL  # the original generator's output
    d = gan.D(image)
    assert torch.equal(d, direct["D"](image))
    assert rel(d, d_in_condgen_order(oasis_fx["d_real_eval"])) <= OUT_TOL  # the original discriminator's
    assert rel(gan.D(oasis_fx["fake_train"]), d_in_condgen_order(oasis_fx["d_fake_eval"])) <= OUT_TOL


@torch.no_grad()
def test_ema_round_trip(official, oasis_fx, tmp_path, capsys):
    out = convert(tmp_path, official["models"], capsys, "with_ema")
    meta = json.loads((out / "convert.json").read_text())
    assert meta["G_is"] == "EMA" and set(meta["loaded"]) == {"G", "D", "EMA"}
    assert (out / "step_0" / "ema.safetensors").is_file()

    s = official["states"]
    direct = load_oasis(FLAGS, G=s["G"], D=s["D"], EMA=s["EMA"])
    seg, z, image = inputs(oasis_fx)
    ref = direct["EMA"](seg, z)
    assert not torch.equal(ref, direct["G"](seg, z))  # the EMA weights are not G's
    for ema in (False, True):  # G of the run dir is the EMA generator (what OASIS tests with), so is `ema`
        gan, _, info = load_run(out, ema=ema)
        assert info["ema"] is ema
        same_state(gan.G, direct["EMA"])
        assert torch.equal(gan.G(seg, z), ref)
        same_state(gan.D, direct["D"])
        assert torch.equal(gan.D(image), direct["D"](image))


def test_missing_checkpoint_is_named(tmp_path, capsys):
    argv = ["oasis", "--flags", FLAGS, "--checkpoint_dir", str(tmp_path), "--out", str(tmp_path / "o")]
    assert convert_main(argv) == 2
    err = capsys.readouterr().err
    assert "latest_G.pth" in err and "latest_EMA.pth" in err
