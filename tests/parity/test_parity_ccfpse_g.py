"""Parity with the official CC-FPSE generator (`--netG condconv`, ngf 2, 14 label channels, VAE, 256 px).

Loads the official state dict strictly through `OFFICIAL_RENAMES` and reproduces `fake_eval`, then
`fake_train` (BN batch statistics; one spectral-norm power iteration per call), in the fixture's order.
Note: `fake_eval` is fully saturated (the fresh BN running statistics let activations grow to ~1e33
before tanh), so it checks signs only, up to fp32 round-off (see `tests/parity/saturated.py`);
`fake_train` (std ~0.008) is the informative comparison.
"""

import torch
import torch.nn.functional as F

from condgen.convert.keys import load_official_state
from condgen.networks.ccfpse_generator import CCFPSEGenerator
from condgen.utils import count_parameters
from tests.conftest import load_fixture
from tests.parity.saturated import generate_with_logits, mismatch_beyond_roundoff

TOL = 1e-5


def test_official_ccfpse_generator_outputs():
    fx = load_fixture("ccfpse_ngf2_label12_vae.pt")
    one_hot = F.one_hot(fx["labels"][:, 0].long(), 13).permute(0, 3, 1, 2).float()
    seg = torch.cat([one_hot, fx["instance_edges"].float()], 1)  # classes, don't-care, edges last
    assert seg.shape[1] == fx["semantic_nc"] == 14
    G = CCFPSEGenerator(14, crop_size=256, ngf=2, use_vae=True, num_upsampling_layers="normal")
    assert count_parameters(G) == fx["param_counts"]["G"]
    load_official_state(G, fx["G"], CCFPSEGenerator.OFFICIAL_RENAMES, what="CC-FPSE generator")
    with torch.no_grad():
        G.eval()
        fake_eval, logits = generate_with_logits(G, seg, fx["z"])
        err_eval = mismatch_beyond_roundoff(fake_eval, logits, fx["fake_eval"], TOL)
        G.train()
        fake_train = G(seg, fx["z"])
        err_train = (fake_train - fx["fake_train"]).abs().max().item()
    print(f"CC-FPSE G parity: max abs error eval {err_eval:.3g}, train {err_train:.3g}")
    assert err_eval <= TOL and err_train <= TOL
    assert fake_train.std() > 1e-3  # the train-mode comparison is not between two constant images
