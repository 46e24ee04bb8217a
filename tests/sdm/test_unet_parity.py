"""condgen's SDMUNet against the original SDM UNet (WeilunWang/semantic-diffusion-model 7171f37).

The original state dicts (rebuilt from the fixture's recipe) load strictly; the timestep features are
bitwise, the UNet outputs at t = 0, 371, 999 with the condition, with its edge channel zeroed, with the null
condition and without the instance channel match within 1e-4 of the reference's std (the fixture README's
CI tolerance), with the label-sparse SPADE convs on and off. The label map itself is rebuilt by condgen's
`encode_labels` from the stored label and 8-bit instance maps, bitwise.
"""

import hashlib

import pytest
import torch

from condgen.blocks.sdm import timestep_embedding
from condgen.data.labels import encode_labels
from condgen.ops.label_conv import use_label_sparse
from condgen.utils import count_parameters
from tests.sdm.conftest import tiny_unet

OUT_TOL = 1e-4  # max |ours - ref| / std(ref), README section 10


def digest(t: torch.Tensor) -> str:
    return hashlib.sha256(
        t.contiguous().numpy().astype("<f8" if t.is_floating_point() else "<i8").tobytes()
    ).hexdigest()


def rel(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours.double() - ref.double()).abs().max() / ref.double().std()).item()


def condition(fx: dict, *, instance: bool = True) -> torch.Tensor:
    inst = fx["instance"] if instance else None
    return encode_labels(fx["label"], 12, instance=inst, instance_edges=instance)


def test_state_dicts_load_strictly_with_the_original_sizes(sdm_fx, original_state):
    ours = tiny_unet(13)
    assert set(ours.state_dict()) == set(sdm_fx["keys"])
    assert count_parameters(ours) == 5_115_846 and count_parameters(tiny_unet(12)) == 5_092_806
    tiny_unet(12).load_state_dict(original_state["UNet_noinst"], strict=True)


def test_label_map_is_the_originals(sdm_fx):
    """One-hot of 12 classes + the edge map of the 8-bit instance ids, last."""
    assert digest(condition(sdm_fx).double()) == sdm_fx["y_digest"]


def test_timestep_embedding(sdm_fx, unet):
    t = sdm_fx["t_loss"]
    assert torch.equal(timestep_embedding(t, 32), sdm_fx["timestep_sinusoid"])  # float32, cos first
    with torch.no_grad():
        emb = unet.time_embed(timestep_embedding(t, 32))
    assert rel(emb, sdm_fx["time_embed_out"]) < OUT_TOL


@pytest.mark.parametrize("mode", ["on", "off"])
def test_unet_outputs(sdm_fx, unet, original_state, mode):
    fx = sdm_fx
    y = condition(fx)
    from condgen.diffusion import GaussianDiffusion

    x_t = GaussianDiffusion.make().q_sample(fx["x0"], fx["t_loss"], fx["noise"])
    assert digest(x_t.double()) == fx["x_t_digest"]  # float32 coefficients, bitwise
    edges_zeroed = y.clone()
    edges_zeroed[:, -1] = 0
    noinst = tiny_unet(12).eval()
    noinst.load_state_dict(original_state["UNet_noinst"])
    with torch.no_grad(), use_label_sparse(mode):
        out = {"out_cond": unet(x_t, fx["t_loss"], y)}
        if mode == "off":  # the dense SPADE convs: the conditional output suffices
            assert rel(out["out_cond"], fx["out_cond"]) < OUT_TOL
            return
        out |= {
            "out_null": unet(x_t, fx["t_loss"], torch.zeros(3, 13, 32, 64)),
            "out_cond_edges_zeroed": unet(x_t, fx["t_loss"], edges_zeroed)[..., ::2, ::2],
            "out_noinst_cond": noinst(x_t, fx["t_loss"], condition(fx, instance=False))[..., ::2, ::2],
        }
        noinst_null = noinst(x_t, fx["t_loss"], torch.zeros(3, 12, 32, 64))
    errors = {k: rel(v, fx[k]) for k, v in out.items()}
    assert max(errors.values()) < OUT_TOL, errors
    assert torch.equal(noinst_null, out["out_null"])  # the zero condition: the same numbers, as the original


def test_bad_inputs_name_the_fix(unet):
    x, t = torch.zeros(1, 3, 32, 64), torch.zeros(1, dtype=torch.long)
    with pytest.raises(ValueError, match="expected 13 channels"):
        unet(x, t, torch.zeros(1, 12, 32, 64))
    with pytest.raises(ValueError, match="divisible by 4"):
        unet(torch.zeros(1, 3, 30, 64), t, torch.zeros(1, 13, 30, 64))


def test_gradient_checkpointing_gives_the_same_gradients(original_state):
    """`use_checkpoint` recomputes the blocks in backward: the same loss and gradients."""
    torch.manual_seed(0)
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([3, 700])
    y = encode_labels(torch.randint(0, 12, (2, 1, 16, 16)), 12, instance=torch.randint(0, 3, (2, 1, 16, 16)))
    grads = []
    for flag in (False, True):
        net = tiny_unet(13, use_checkpoint=flag).train()
        net.load_state_dict(original_state["UNet"])
        net(x, t, y).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    assert torch.allclose(grads[0], grads[1], rtol=0, atol=1e-6 * grads[0].abs().max().item())
