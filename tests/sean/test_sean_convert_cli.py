"""`python -m condgen.convert sean`: an original-layout checkpoint -> a run dir that `load_networks` rebuilds.

A small original-layout state (8-wide styles, 19 per-class layers as the original always has; made by
`to_original` from a condgen G) keeps the test fast; the fixture's full-size state is covered by
test_sean_parity.py's round trip.
"""

import torch

from condgen.convert.__main__ import main
from condgen.convert.sean import build_sean, parse_sean_flags, to_original
from condgen.train.state import load_networks

FLAGS = "--label_nc 4 --no_instance --crop_size 32 --ngf 2 --ndf 4"


def test_convert_cli_writes_a_loadable_run(tmp_path):
    torch.manual_seed(0)
    nets = build_sean(parse_sean_flags(FLAGS), style_dim=8, encoder_widths=(2, 2, 2, 2))
    for p in nets["G"].parameters():
        torch.nn.init.normal_(p, std=0.1)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    theirs = to_original(nets["G"].state_dict())
    assert "up_0.ace_s.fc_mu18.weight" in theirs
    assert "head_0.ace_0.Spade.param_free_norm.running_var" in theirs
    torch.save(theirs, ckpt / "latest_net_G.pth")
    torch.save(nets["D"].state_dict(), ckpt / "latest_net_D.pth")  # SPADE's D keys (SN parametrized)
    run = str(tmp_path / "run")
    assert main(["sean", "--flags", FLAGS, "--checkpoint_dir", str(ckpt), "--out", run]) == 0
    gan, spec = load_networks(tmp_path / "run")
    assert spec.semantic_nc == 4 and type(gan.G).__name__ == "SEANGenerator"
    seg = torch.zeros(1, 4, 32, 32)
    seg[:, 1] = 1
    img = torch.rand(1, 3, 32, 32) * 2 - 1
    outs = []
    for G in (gan.G, nets["G"].eval()):
        torch.manual_seed(1)  # the same per-pixel noise
        with torch.no_grad():
            outs.append(G(seg, img))
    assert torch.equal(*outs)


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    out = str(tmp_path / "o")
    assert main(["sean", "--flags", FLAGS, "--checkpoint_dir", str(tmp_path), "--out", out]) == 2
    assert "latest_net_G.pth not found" in capsys.readouterr().err
