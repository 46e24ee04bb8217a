"""`python -m condgen.convert` writes a run directory that `load_networks` rebuilds with identical outputs."""

import shlex

import pytest
import torch
import torch.nn.functional as F

from condgen.convert.__main__ import main as convert_main
from condgen.train.state import load_networks
from tests.conftest import load_fixture
from tests.parity.saturated import generate_with_logits, mismatch_beyond_roundoff


@pytest.mark.parametrize(
    "repo, name", [("spade", "spade_ngf2_label12_vae.pt"), ("ccfpse", "ccfpse_ngf2_label12_vae.pt")]
)
def test_convert_cli_round_trip(tmp_path, repo, name, capsys):
    fx = load_fixture(name)
    ckpt = tmp_path / "checkpoints" / "official"
    ckpt.mkdir(parents=True)
    for net in ("G", "D", "E"):
        torch.save(fx[net], ckpt / f"latest_net_{net}.pth")
    out = tmp_path / "run"
    flags = shlex.join(fx["argv"])
    assert convert_main([repo, "--flags", flags, "--checkpoint_dir", str(ckpt), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (out / "config.gin").is_file() and (out / "step_0" / "G.safetensors").is_file()

    gan, spec = load_networks(out)
    assert spec.semantic_nc == fx["semantic_nc"]
    seg = torch.cat(
        [F.one_hot(fx["labels"][:, 0].long(), 13).permute(0, 3, 1, 2).float(), fx["instance_edges"].float()],
        1,
    )
    with torch.no_grad():
        fake, logits = generate_with_logits(gan.G, seg, fx["z"])
        mu, _ = gan.E(fx["img"])
    assert mismatch_beyond_roundoff(fake, logits, fx["fake_eval"], 1e-5) <= 1e-5
    assert (mu - fx["mu_eval"]).abs().max() <= 1e-5


def test_convert_cli_names_missing_checkpoint(tmp_path, capsys):
    code = convert_main(
        [
            "spade",
            "--flags",
            "--dataset_mode coco",
            "--checkpoint_dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "latest_net_G.pth not found" in err and "--which_epoch" in err
