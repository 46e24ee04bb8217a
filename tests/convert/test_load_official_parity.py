"""End-to-end parity through the public API: official flags + state dicts -> condgen G, D, E."""

import pytest
import torch
import torch.nn.functional as F

from condgen.convert.official import load_official
from tests.conftest import load_fixture
from tests.fixtures.compact import nested_max_error
from tests.parity.saturated import generate_with_logits, mismatch_beyond_roundoff

TOL = 1e-5


@pytest.mark.parametrize(
    "repo, name", [("spade", "spade_ngf2_label12_vae.pt"), ("ccfpse", "ccfpse_ngf2_label12_vae.pt")]
)
def test_load_official_matches_official_outputs(repo, name):
    fx = load_fixture(name)
    nets = load_official(repo, fx["argv"], G=fx["G"], D=fx["D"], E=fx["E"])
    G, D, E = nets["G"], nets["D"], nets["E"]
    seg = torch.cat(
        [F.one_hot(fx["labels"][:, 0].long(), 13).permute(0, 3, 1, 2).float(), fx["instance_edges"].float()],
        1,
    )
    assert seg.shape[1] == fx["semantic_nc"]
    errors = {}
    with torch.no_grad():
        for mode in ("eval", "train"):
            for net in (G, D, E):
                net.train(mode == "train")
            fake, logits = generate_with_logits(G, seg, fx["z"])
            errors[f"fake_{mode}"] = mismatch_beyond_roundoff(fake, logits, fx[f"fake_{mode}"], TOL)
            # D sees the official image, so D's parity does not inherit G's round-off
            errors[f"d_fake_{mode}"] = nested_max_error(D(fx[f"fake_{mode}"], seg), fx[f"d_fake_{mode}"])
            errors[f"d_real_{mode}"] = nested_max_error(D(fx["img"], seg), fx[f"d_real_{mode}"])
            mu, logvar = E(fx["img"])
            errors[f"mu_{mode}"] = (mu - fx[f"mu_{mode}"]).abs().max().item()
            errors[f"logvar_{mode}"] = (logvar - fx[f"logvar_{mode}"]).abs().max().item()
    print(repo, {k: f"{v:.2e}" for k, v in errors.items()})
    assert max(errors.values()) <= TOL, errors
    counts = {k: sum(p.numel() for p in v.parameters()) for k, v in nets.items()}
    assert counts == fx["param_counts"]


def test_load_official_rejects_wrong_flags_naming_keys():
    fx = load_fixture("spade_ngf2_label12_vae.pt")
    with pytest.raises(ValueError, match=r"(?s)shape .*label_nc"):
        load_official("spade", "--dataset_mode custom --label_nc 20 --ngf 2 --use_vae", G=fx["G"])
