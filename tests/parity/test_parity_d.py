"""Discriminator parity with the official code: official state dicts loaded strictly, outputs to <= 1e-5.

Per the fixture README: for mode eval then train, D(fake_{mode}, seg) then D(img, seg), in that order (in
train mode each call advances every spectral-norm power iteration once, so the order matters).
"""

import pytest
import torch
import torch.nn.functional as F

from condgen.convert.keys import load_official_state
from condgen.networks import fpse_discriminator, patch_discriminator
from condgen.utils import count_parameters
from tests.conftest import load_fixture
from tests.fixtures.compact import nested_max_error, shape_of

CASES = {
    "spade_ngf2_label12_vae.pt": (patch_discriminator.MultiscalePatchDiscriminator, patch_discriminator),
    "ccfpse_ngf2_label12_vae.pt": (fpse_discriminator.FPSEDiscriminator, fpse_discriminator),
}


def structure(x):
    """Nesting and shapes, to compare two nested outputs."""
    return [structure(y) for y in x] if isinstance(x, (list, tuple)) else shape_of(x)


@pytest.mark.parametrize("name", sorted(CASES))
def test_discriminator_matches_official(name):
    fx = load_fixture(name)
    cls, module = CASES[name]
    D = cls(fx["semantic_nc"], ndf=4)  # official --ndf 4, everything else at its default
    load_official_state(D, fx["D"], cls.OFFICIAL_RENAMES, what=cls.__name__)
    assert count_parameters(D) == fx["param_counts"]["D"]
    one_hot = F.one_hot(fx["labels"][:, 0].long(), 13).permute(0, 3, 1, 2).float()
    seg = torch.cat([one_hot, fx["instance_edges"].float()], 1)
    assert seg.shape[1] == fx["semantic_nc"]
    errors = {}
    for mode in ("eval", "train"):
        D.train(mode == "train")
        with torch.no_grad():
            outputs = {"fake": D(fx[f"fake_{mode}"], seg), "real": D(fx["img"], seg)}
        for which, ours in outputs.items():
            theirs = fx[f"d_{which}_{mode}"]
            assert structure(ours) == structure(theirs)
            errors[f"{which}_{mode}"] = nested_max_error(ours, theirs)
    print(f"{name}: max abs error {errors}")
    assert max(errors.values()) <= 1e-5, errors


def test_train_mode_advances_spectral_norm_once_per_call():
    fx = load_fixture("spade_ngf2_label12_vae.pt")
    D = patch_discriminator.MultiscalePatchDiscriminator(fx["semantic_nc"], ndf=4)
    load_official_state(D, fx["D"])
    u = D.discriminator_0.model1[0][0].parametrizations.weight[0]._u
    before = u.clone()
    seg = torch.zeros(1, fx["semantic_nc"], 64, 64)
    D.eval()
    with torch.no_grad():
        D(torch.zeros(1, 3, 64, 64), seg)
    assert torch.equal(u, before)  # eval uses the stored u, v as they are
    D.train()
    with torch.no_grad():
        D(torch.zeros(1, 3, 64, 64), seg)
    assert not torch.equal(u, before)
