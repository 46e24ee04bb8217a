"""`python -m condgen.convert sdm`: released SDM files (the fixture's original state dict saved as the
original names them) become a run directory whose UNet reproduces the original's outputs; keys are checked
strictly."""

import pytest
import torch

from condgen.convert.__main__ import main
from condgen.convert.sdm import load_sdm, parse_sdm_flags, to_condgen_channels
from condgen.train.state import load_networks, load_weights
from tests.sdm.test_unet_parity import OUT_TOL, condition, rel

TINY_FLAGS = ("--image_size 32 --num_classes 12 --num_channels 32 --num_res_blocks 1 --channel_mult 1,2,2 "
              "--attention_resolutions 16,8 --num_head_channels 16 --diffusion_steps 1000 --learn_sigma True "
              "--noise_schedule linear --resblock_updown True --use_fp16 False --use_scale_shift_norm True "
              "--class_cond True --no_instance False")


def test_released_files_convert_to_a_run_that_reproduces_the_original(tmp_path, sdm_fx, original_state):
    ckpt = tmp_path / "released"
    ckpt.mkdir()
    state = original_state["UNet"]
    torch.save(state, ckpt / "ema_0.9999_000100.pt")
    torch.save({k: v * 0 for k, v in state.items()}, ckpt / "ema_0.9999_000050.pt")  # an older one
    torch.save({k: v * 0 for k, v in state.items()}, ckpt / "model000100.pt")
    argv = ["sdm", "--flags", TINY_FLAGS, "--checkpoint_dir", str(ckpt), "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    gan, spec = load_networks(tmp_path / "run")
    assert gan.D is None and spec.semantic_nc == 13
    assert torch.equal(load_weights(tmp_path / "run", "ema")["out.2.weight"], state["out.2.weight"])
    from condgen.diffusion import GaussianDiffusion

    x_t = GaussianDiffusion.make().q_sample(sdm_fx["x0"], sdm_fx["t_loss"], sdm_fx["noise"])
    with torch.no_grad():
        out = gan.G(x_t, sdm_fx["t_loss"], condition(sdm_fx))
    assert rel(out, sdm_fx["out_cond"]) < OUT_TOL  # the newest EMA file, loaded as G


def test_keys_are_strict_and_missing_files_are_named(tmp_path, original_state):
    broken = dict(original_state["UNet"])
    broken.pop("out.2.bias")
    with pytest.raises(ValueError, match="missing \\(1\\): out.2.bias"):
        load_sdm(TINY_FLAGS, broken)
    (tmp_path / "empty").mkdir()
    assert main(["sdm", "--flags", TINY_FLAGS, "--checkpoint_dir", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "run")]) == 2


def test_ade20k_label_channels_are_permuted_to_condgens():
    """The original's channel k - 1 is condgen's raw id k; its last channel (id 0, 'other') is condgen's 0."""
    cfg = parse_sdm_flags("--dataset_mode ade20k --num_classes 151 --no_instance True --image_size 256")
    assert cfg.spec().semantic_nc == 151
    w = torch.arange(151.0).reshape(1, 151, 1, 1)
    out = to_condgen_channels({"middle_block.0.in_norm.mlp_shared.0.weight": w, "out.2.weight": w}, cfg)
    assert out["middle_block.0.in_norm.mlp_shared.0.weight"].flatten()[:3].tolist() == [150.0, 0.0, 1.0]
    assert torch.equal(out["out.2.weight"], w)
