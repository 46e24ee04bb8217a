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


def test_a_pickle_that_is_not_plain_weights_is_refused_naming_the_file(tmp_path, capsys):
    """Never executed, and never the advice `weights_only=False` (which would run the payload)."""
    import pathlib

    class Payload:
        def __reduce__(self):
            return pathlib.Path.touch, (tmp_path / "payload_ran",)

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    torch.save({"weights": torch.zeros(2), "extra": Payload()}, ckpt / "latest_net_G.pth")
    out = tmp_path / "out"
    args = ["spade", "--flags", "--dataset_mode coco --ngf 4", "--checkpoint_dir", str(ckpt),
            "--out", str(out)]
    assert convert_main(args) == 2
    err = capsys.readouterr().err
    assert f"{ckpt / 'latest_net_G.pth'}: not a plain weights file" in err
    assert "weights_only" not in err and "Traceback" not in err
    assert not (tmp_path / "payload_ran").exists() and not out.exists()
    (ckpt / "latest_net_G.pth").write_bytes(b"PK\x03\x04 truncated")
    assert convert_main(args) == 2
    assert "not a readable PyTorch checkpoint" in capsys.readouterr().err


def test_a_converted_vae_at_a_non_square_crop_loads_strictly(tmp_path):
    """Cityscapes (512 x 256 crops): the official encoder squashes to 256 x 256, so the rebuilt one must too
    (`VAEEncoder.official_resize`), or its fc_mu has another size and the strict load fails."""
    import gin

    from condgen.convert.export import official_config_gin, write_run_dir
    from condgen.convert.official import load_official, parse_official_flags

    flags = "--dataset_mode cityscapes --use_vae --ngf 4 --crop_size 64 --load_size 64 "
    flags += "--num_upsampling_layers normal"
    nets = load_official("spade", flags)
    cfg = parse_official_flags("spade", flags)
    assert cfg.spec.aspect_ratio == 2.0
    run = write_run_dir(tmp_path / "run", nets, official_config_gin(cfg, flags), cfg.spec, {"flags": flags})
    gin.clear_config()
    gan, _ = load_networks(run)
    assert gan.E.fc_mu.weight.shape == nets["E"].fc_mu.weight.shape
    assert torch.equal(gan.E.fc_mu.weight, nets["E"].fc_mu.weight)
