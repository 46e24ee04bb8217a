"""benchmarks/official_step.py: its pure parts here; end to end only where a checkout of the official code is
given (CONDGEN_OFFICIAL_SPADE / CONDGEN_OFFICIAL_CCFPSE = path; never vendored)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.official_step import LOSS_NAMES, loss_diff, official_argv, use_vae


def test_official_argv():
    spade = official_argv("spade", 128, 32, 1, Path("/r"))
    assert spade[spade.index("--gpu_ids") + 1] == "-1" and "--use_vae" not in spade
    cc128, cc256 = (official_argv("ccfpse", size, 32, 1, Path("/r")) for size in (128, 256))
    assert "--gpu_ids" not in cc128  # CC-FPSE has no such option
    assert cc128[cc128.index("--lambda_feat") + 1] == "20"  # as ccfpse_coco.gin
    assert "--use_vae" not in cc128 and "--use_vae" in cc256  # the official encoder works at 256 px only
    assert not use_vae("spade", 256) and use_vae("ccfpse", 256)


def test_loss_diff_names_the_worst_loss():
    theirs = {k: 1.0 for k in LOSS_NAMES}
    ours = {v: 1.0 for v in LOSS_NAMES.values()} | {"G_VGG": 1.5}
    assert loss_diff(theirs, ours) == "5.0e-01 (VGG)"


@pytest.mark.parametrize("model,env",
                         [("spade", "CONDGEN_OFFICIAL_SPADE"), ("ccfpse", "CONDGEN_OFFICIAL_CCFPSE")])
def test_end_to_end_against_the_official_code(model, env):
    path = os.environ.get(env)
    if not path:
        pytest.skip(f"{env} (a checkout of the official code) not set")
    cmd = [sys.executable, "-m", "benchmarks.official_step", "--official", path, "--model", model,
           "--size", "64", "--ngf", "8", "--rounds", "1", "--label-sparse", "auto,off"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=900).stdout
    rows = [line for line in out.splitlines() if line.startswith(f"| {model}")]
    assert len(rows) == 2
    for row in rows:  # the first step's losses agree to fp32 round-off
        assert float(re.findall(r"(\d\.\de[-+]\d+) \(", row)[0]) < 1e-4, row
