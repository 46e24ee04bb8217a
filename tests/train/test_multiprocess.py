"""Two CPU processes (gloo) train the tiny SPADE with DDP and end with identical weights."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from condgen.train.state import load_weights

REPO = Path(__file__).resolve().parents[2]
TINY = Path(__file__).with_name("tiny.gin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(run_dir: Path, *bindings: str, processes: int = 2) -> subprocess.CompletedProcess:
    # `accelerate launch --cpu` starts a single process; torchrun + ACCELERATE_USE_CPU gives a gloo group.
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
           f"--master_port={free_port()}", str(REPO / "experiments" / "run.py"), "--gin", str(TINY),
           "--run_dir", str(run_dir), "--gin_bindings", *bindings]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=85, cwd=REPO)


@pytest.mark.slow
def test_two_processes_end_with_identical_weights(tmp_path):
    # the VAE encoder is a third DDP module; D_steps_per_G 2 leaves G without a forward on odd steps
    out = launch(tmp_path, "train.max_steps = 4", "train.D_steps_per_G = 2", "SPADEGenerator.use_vae = True",
                 "SPADEGenerator.z_dim = 16", "build_gan.encoder = @VAEEncoder", "VAEEncoder.ngf = 4",
                 "VAEEncoder.z_dim = 16")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["processes"] == 2
    hashes = summary["weights_sha256"]
    assert len(hashes) == 2 and hashes[0] == hashes[1]
    assert out.stdout.count("trained 4 steps") == 1  # only the main process reports
    assert sorted(p.name for p in (tmp_path / "step_4").glob("random_states_*.pkl")) == [
        "random_states_0.pkl", "random_states_1.pkl"]
    G = load_weights(tmp_path, "G")  # saved without DDP's `module.` prefix: loads in one process
    assert not any(k.startswith("module.") for k in G) and all(torch.isfinite(v).all() for v in G.values())


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(tmp_path):
    """The documented command: `ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2`."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--main_process_port", str(free_port()), str(REPO / "experiments" / "run.py"), "--gin", str(TINY),
           "--run_dir", str(tmp_path)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=85, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["processes"] == 2
    assert len(set(summary["weights_sha256"])) == 1


@pytest.mark.slow
def test_a_killed_rank_leaves_one_line_naming_the_checkpoint_to_resume(tmp_path):
    """kill -9 of one process of a 2-process run: the other exits within seconds with one line saying which
    checkpoint --resume continues from, instead of gloo's traceback."""
    import signal
    import time

    from condgen.rundir import LOCK_FILE, resumable_checkpoint

    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={free_port()}", str(REPO / "experiments" / "run.py"), "--gin", str(TINY),
           "--run_dir", str(tmp_path),
           "--gin_bindings", "train.max_steps = 100000", "train.save_every = 2", "train.sample_every = None"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            cwd=REPO)
    try:
        deadline = time.monotonic() + 80
        while not (tmp_path / "step_2" / "state.json").is_file():
            assert time.monotonic() < deadline and proc.poll() is None, "no checkpoint came"
            time.sleep(0.2)
        rank0 = json.loads((tmp_path / LOCK_FILE).read_text())["pid"]  # the main process holds the lock
        os.kill(rank0, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode != 0
    ours = [line for line in err.splitlines() if "another training process of this run stopped" in line]
    ckpt, _ = resumable_checkpoint(tmp_path)
    assert len(ours) == 1 and "this is rank 1" in ours[0], err[-3000:]
    assert ours[0].startswith("error: ") and ours[0].endswith(f"--resume continues from {ckpt} "
                                                              f"(step {ckpt.name.split('_')[1]})")
    assert "condgen/train/loop.py" not in err and "gloo" not in err, err[-3000:]
