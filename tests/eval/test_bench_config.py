"""gin/bench/synthetic.gin builds every CC-FPSE Table 2 cell with the same budget and the intended blocks."""

from pathlib import Path

import pytest

from condgen.cli.gin_setup import parse_gin
from condgen.report import paper_names

REPO = Path(__file__).resolve().parents[2]
CELLS = {  # mixin -> (generator, discriminator) in the paper's names
    "baseline_spade__mspatch": ("SPADE", "MsPatch"),
    "1_cc_wo_fp__mspatch": ("CC w/o FP", "MsPatch"),
    "2_cc_w_fp__mspatch": ("CC w/ FP", "MsPatch"),
    "3_cc_wo_fp__fpse": ("CC w/o FP", "FP+SE"),
    "4_spade_w_fp__mspatch_se": ("SPADE w/ FP", "MsPatch+SE"),
    "5_spade_w_fp__fpse": ("SPADE w/ FP", "FP+SE"),
    "6_cc_w_fp__mspatch_se": ("CC w/ FP", "MsPatch+SE"),
    "ccfpse__fpse": ("CC w/ FP", "FP+SE"),
}


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_every_cell_builds_with_the_shared_budget(cell):
    import gin

    from condgen.data.landscapes import SyntheticLandscapes
    from condgen.train.build import build_gan

    parse_gin(
        [
            REPO / "gin" / "bench" / "synthetic.gin",
            REPO / "gin" / "ablations" / "ccfpse_table2" / f"{cell}.gin",
        ],
        [],
    )
    assert gin.query_parameter("train.max_steps") == 600 and gin.query_parameter("train.seed") == 0
    assert gin.query_parameter("Pix2PixHDObjective.lambda_vgg") == 0.0
    gan = build_gan(SyntheticLandscapes().spec)
    assert paper_names(gan) == CELLS[cell] and gan.E is None


def test_the_runner_script_names_every_cell():
    script = (REPO / "gin" / "bench" / "run.sh").read_text()
    assert all(cell in script for cell in CELLS)
