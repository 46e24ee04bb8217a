"""Every tutorial's marked blocks run, in order, at tiny scale (see tests/docs/blocks.py for the marker).

Each tutorial runs in a fresh temporary folder holding a link to the repository's `experiments/` (gin files
resolve from the repository's `gin/` anyway). Shell blocks run in bash with the test's Python first on PATH;
python blocks share one namespace per tutorial. A few tutorials need data a reader would download: their
setup writes it (miniature official layouts, the official-code parity fixtures as checkpoints).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import gin
import pytest
import torch

from tests.conftest import load_fixture
from tests.docs.blocks import runnable_blocks

REPO = Path(__file__).resolve().parents[2]
TUTORIALS = sorted((REPO / "docs" / "tutorials").glob("[0-9]*.md"))
# The longest tutorials first (03 about 110 s under `pytest -n 2` on 2 cores, 02 60 s, 07 and 06 45 s), so
# the two workers end together. 03 and 02 are not adjacent: xdist hands tests out two at a time, and the two
# longest on one worker cost ~40 s of wall time.
LONGEST = ("03_ablations", "07_official_checkpoints", "02_datasets", "06_evaluate")


def _longest_first(path: Path) -> tuple[int, str]:
    return (LONGEST.index(path.stem) if path.stem in LONGEST else len(LONGEST), path.name)


def _datasets(cwd: Path, layouts: tuple[str, ...] = ("coco", "ade20k", "cityscapes")) -> None:
    """Official layouts where the gin files expect them (datasets/...), a few items each.

    COCO-Stuff gets 4 items: the 2-process launches take 2 per process (BatchNorm needs 2 per process).
    """
    from condgen.data.miniature import make_miniature

    for layout, folder, size, n in (("coco", "coco_stuff", 64, 4), ("ade20k", "", 64, 2),
                                    ("cityscapes", "cityscapes", 128, 2)):
        if layout in layouts:
            make_miniature(layout, cwd / "datasets" / folder, n=n, size=size)


def _official_label_maps(cwd: Path) -> None:
    """COCO-Stuff-layout val items with the parity fixtures' 12 classes (ids 0..11, 255 don't care)."""
    import numpy as np
    from PIL import Image

    from condgen.data.miniature import make_miniature

    root = make_miniature("coco", cwd / "datasets" / "coco_stuff", n=2, size=64)
    for path in sorted((root / "val_label").glob("*.png")):
        ids = np.asarray(Image.open(path))
        Image.fromarray(np.where(ids == 255, 255, ids % 12).astype(np.uint8)).save(path)


def _official_checkpoints(cwd: Path) -> None:
    """The parity fixtures' official state dicts where the official code saves them, and its outputs."""
    for name, folder in (("spade_ngf2_label12_vae.pt", "coco_pretrained"),
                         ("ccfpse_ngf2_label12_vae.pt", "coco_best")):
        fx = load_fixture(name)
        (cwd / "checkpoints" / folder).mkdir(parents=True)
        for net in ("G", "D", "E"):
            torch.save(fx[net], cwd / "checkpoints" / folder / f"latest_net_{net}.pth")
        # what the official test script feeds netG: one_hot(labels, label_nc + don't care) + instance edges
        one_hot = torch.nn.functional.one_hot(fx["labels"][:, 0].long(), 13).permute(0, 3, 1, 2).float()
        seg = torch.cat([one_hot, fx["instance_edges"].float()], 1)
        torch.save({"seg": seg, "z": fx["z"], "fake": fx["fake_eval"]},
                   cwd / "checkpoints" / folder / "official_outputs.pt")


def _official(cwd: Path) -> None:
    _official_checkpoints(cwd)
    _official_label_maps(cwd)


def _paper_segmenter_weights(cwd: Path) -> None:
    """Synthetic DeepLabV2 weights (the segmenter parity fixture's spec) saved as the released file."""
    from tests.eval.conftest import segmenter_fixture
    from tests.fixtures.segmenter_weights import synthetic_state_dict

    fx = segmenter_fixture("deeplabv2_cocostuff")
    (cwd / "weights").mkdir()
    torch.save(synthetic_state_dict(fx["spec"], fx["fixed"]),
               cwd / "weights" / "deeplabv2_resnet101_msc-cocostuff164k-100000.pth")


def _evaluate(cwd: Path) -> None:
    _official(cwd)
    _paper_segmenter_weights(cwd)


SETUP = {"02_datasets": _datasets, "06_evaluate": _evaluate,
         "03_ablations": lambda cwd: _datasets(cwd, ("coco", "ade20k")),
         "07_official_checkpoints": _official, "08_speed_memory": lambda cwd: _datasets(cwd, ("coco",))}


def _run_shell(code: str, cwd: Path, where: str) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=str(REPO), CONDGEN_CACHE=str(cwd / ".cache"), MPLBACKEND="Agg")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # as tests/conftest.py does for the workers: under `pytest -n 2` on 2 cores, one thread per process,
        # or the tutorials' subprocesses spin against each other (06's eval: ~70 s a call, ~18 s with one)
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault("CONDGEN_CPU_THREADS", "1")  # also under accelerate launch (condgen would take 2)
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, (f"{where} failed ({out.returncode}):\n{code}\n--- stdout\n"
                                 f"{out.stdout[-3000:]}\n--- stderr\n{out.stderr[-3000:]}")


def test_every_tutorial_has_runnable_blocks():
    assert len(TUTORIALS) >= 1
    for path in TUTORIALS:
        assert runnable_blocks(path), f"{path.name} has no <!-- test: run --> block"


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(TUTORIALS, key=_longest_first), ids=lambda p: p.stem)
def test_tutorial_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "experiments").symlink_to(REPO / "experiments")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONDGEN_CACHE", str(tmp_path / ".cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if path.stem in SETUP:
        SETUP[path.stem](tmp_path)
    namespace: dict = {"__name__": f"tutorial_{path.stem}"}
    sys.path.insert(0, str(tmp_path))  # modules a tutorial writes import as from the reader's folder
    try:
        for block in runnable_blocks(path):
            where = f"{path.name}:{block.line}"
            start = time.perf_counter()
            if block.save is not None:
                (tmp_path / block.save).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / block.save).write_text(block.code)
            elif block.lang == "bash":
                _run_shell(block.code, tmp_path, where)
            else:
                exec(compile(block.code, where, "exec"), namespace)  # noqa: S102 - the tutorial's own code
            print(f"{where}: {time.perf_counter() - start:.1f} s")
    finally:
        sys.path.remove(str(tmp_path))
        gin.clear_config()


def _free_names(code: str) -> set[str]:
    """Names a block reads at its top level without defining or importing them (builtins aside)."""
    import ast
    import builtins

    tree = ast.parse(code)
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    defined = {a.asname or a.name.split(".")[0] for n in imports for a in n.names}
    defined |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    defined |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    defined |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments) for a in n.args + n.kwonlyargs}
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return used - defined - set(dir(builtins))


def test_the_ablation_tutorials_python_blocks_each_run_on_their_own():
    """A reader may copy any one snippet of tutorial 3: none may rely on an earlier one's imports."""
    path = REPO / "docs" / "tutorials" / "03_ablations.md"
    for block in runnable_blocks(path):
        if block.lang == "python":
            assert not _free_names(block.code), f"{path.name}:{block.line} uses {_free_names(block.code)}"
