"""The README's commands, in the README's order, on a fresh machine: an empty cache (XDG_CACHE_HOME in a
temporary folder, no CONDGEN_CACHE) and a new working folder, at tiny scale (the markers say what changes).

This is how a session fixture once hid a crash of `condgen eval`: the suite's cached segmenter. Here the
evaluation trains its segmenter from nothing, as on a new machine. The installs are the environment the
suite runs in; the dev-install + pytest line is CI itself and is not repeated.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.blocks import runnable_blocks
from tests.docs.test_tutorials import _datasets, _official_checkpoints

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def _label_maps(folder: Path, n: int = 2) -> None:
    """What a user would paint: landscape label maps as PNGs (ids 0-8)."""
    import numpy as np
    from PIL import Image

    from condgen.data.landscapes import SyntheticLandscapes

    folder.mkdir(parents=True)
    data = SyntheticLandscapes(crop_size=64, length=n, split="val")
    for i in range(n):
        Image.fromarray(np.asarray(data[i]["label"][0], dtype=np.uint8)).save(folder / f"map_{i}.png")


def test_readme_marks_every_command_a_user_runs():
    blocks = runnable_blocks(README)
    first = blocks[0].code
    assert "experiments/run.py --gin gin/quickstart.gin" in first  # the main job, right at the top
    assert any("condgen paint" in b.code for b in blocks) and any("condgen eval" in b.code for b in blocks)


def test_readme_shows_the_lighter_installs_below_the_two_set_up_commands():
    """The CPU wheels and uv, with what each costs, after the two commands a newcomer runs first."""
    blocks = runnable_blocks(README)
    assert "condgen paint" in blocks[1].code  # the two set-up commands still open the README
    lines = README.read_text().splitlines(keepends=True)
    above, below = "".join(lines[: blocks[1].line + 2]), "".join(lines[blocks[1].line + 2 :])
    cpu, uv = "--index-url https://download.pytorch.org/whl/cpu && pip install -e .", "uv pip install -e ."
    assert cpu in below and uv in below and cpu not in above
    costs = below[: below.index(cpu)]
    assert "6 GB" in costs and "130 s" in costs and "31 s" in costs and "4 GB less" in costs


@pytest.mark.slow
def test_readme_commands_in_order_on_a_fresh_cache(tmp_path: Path):
    (tmp_path / "experiments").symlink_to(REPO / "experiments")
    _datasets(tmp_path, ("coco",))
    _official_checkpoints(tmp_path)
    _label_maps(tmp_path / "maps")
    env = {k: v for k, v in os.environ.items() if k != "CONDGEN_CACHE"}
    env |= {
        "XDG_CACHE_HOME": str(tmp_path / "fresh-cache"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        "CONDGEN_CPU_THREADS": "1",
    }
    namespace: dict = {"__name__": "readme"}
    for block in runnable_blocks(README):
        where = f"README.md:{block.line}"
        if block.lang == "bash":
            out = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=400)
            assert out.returncode == 0, f"{where}:\n{block.code}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        else:
            cwd = os.getcwd()
            os.chdir(tmp_path)
            try:
                exec(compile(block.code, where, "exec"), namespace)  # noqa: S102 - the README's own code
            finally:
                os.chdir(cwd)
    assert (tmp_path / "runs" / "quickstart" / "summary.json").is_file()
    assert list((tmp_path / "fresh-cache" / "condgen").rglob("*.safetensors"))  # the segmenter, cached fresh
    assert (tmp_path / "reports" / "spade_vs_ccfpse").is_dir()
