"""What a user sees when training fails under `accelerate launch` (docs/training.md, exit codes).

Without -q, Accelerate's single-process launcher prints the trainer's stderr a second time inside its own
`CalledProcessError` traceback and exits 1; condgen's message says so and names `-q`, with which the message
is the only and last line.
"""

import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

from condgen.data.landscapes import export_landscapes

REPO = Path(__file__).resolve().parents[2]
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no"]


def test_a_data_error_under_accelerate_launch(tmp_path):
    root = export_landscapes(tmp_path / "data", 4, 32)
    bad = sorted((root / "labels").glob("*.png"))[0]
    Image.fromarray(torch.full((32, 32), 200, dtype=torch.uint8).numpy()).save(bad)
    script = [str(REPO / "experiments" / "run.py"), "--gin", str(REPO / "tests" / "train" / "tiny.gin"),
              "--run_dir", str(tmp_path / "run"), "--gin_bindings", "train.dataset = @CustomFolder",
              f"CustomFolder.root = '{root}'", "CustomFolder.label_nc = 9",
              "CustomFolder.preprocess = 'none'", "CustomFolder.crop_size = 32", "train.shuffle = False"]
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "CONDGEN_CPU_THREADS": "1",
           "PATH": "/usr/bin:/bin"}
    message = f"error: {bad}: label ids 200 are outside 0..8"

    quiet = subprocess.run([*LAUNCH, "-q", *script], env=env, capture_output=True, text=True, timeout=300)
    lines = quiet.stderr.strip().splitlines()
    assert quiet.returncode == 1 and lines[-1].startswith(message), quiet.stderr
    assert quiet.stderr.count(message) == 1 and "Traceback" not in quiet.stderr

    loud = subprocess.run([*LAUNCH, *script], env=env, capture_output=True, text=True, timeout=300)
    assert loud.returncode == 1 and "CalledProcessError" in loud.stderr  # Accelerate's, unchanged
    first = loud.stderr.index(message)
    note = loud.stderr.index("note: condgen exited 2; accelerate launch repeats the error below")
    assert first < note < loud.stderr.index("Traceback") and "accelerate launch -q" in loud.stderr
    assert not (tmp_path / "run").exists()  # nothing left behind, as without the launcher
