"""Run directories are hard to break: early failures leave nothing, foreign folders are refused, one trainer
per run (a lock), leftovers of killed saves are resolved, and SIGINT / SIGTERM stop cleanly with a checkpoint.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from condgen.cli.train import main
from condgen.data.landscapes import export_landscapes
from condgen.rundir import (
    LOCK_FILE,
    MARKER_FILE,
    RunDirLock,
    is_checkpoint,
    latest_checkpoint,
    mark_run_dir,
    read_state,
)
from condgen.train import loop
from condgen.train import state as st
from condgen.train.guard import TrainingInterrupted
from condgen.train.report import read_metrics
from tests.conftest import declared_png
from tests.train.test_state import save, setup_run

REPO = Path(__file__).resolve().parents[2]
RUN_PY = REPO / "experiments" / "run.py"
TINY = Path(__file__).with_name("tiny.gin")
QUIET = ["train.sample_every = None"]


def reset_accelerate():
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def cli(run_dir, *bindings, resume=False):
    argv = ["--gin", str(TINY), "--run_dir", str(run_dir), *(["--resume"] if resume else [])]
    code = main(argv + (["--gin_bindings", *bindings] if bindings else []))
    reset_accelerate()
    return code


def folder_data(root: Path, bad_item: int | None = None) -> list[str]:
    """8 landscapes as a custom folder (read in order); `bad_item` gets a label id outside 0..8."""
    export_landscapes(root, 8, 32)
    if bad_item is not None:
        path = sorted((root / "labels").glob("*.png"))[bad_item]
        Image.fromarray(torch.full((32, 32), 200, dtype=torch.uint8).numpy()).save(path)
    return [
        "train.dataset = @CustomFolder",
        f"CustomFolder.root = '{root}'",
        "CustomFolder.label_nc = 9",
        "CustomFolder.preprocess = 'none'",
        "CustomFolder.crop_size = 32",
        "CustomFolder.flip = False",
        "train.shuffle = False",
    ]


def steps_logged(run_dir):
    return [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")]


def same_weights(a, b):
    for f in ("model.safetensors", "model_1.safetensors"):
        x, y = load_file(Path(a) / f), load_file(Path(b) / f)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), f


# ----------------------------------------------------------------------------------- 1. early failure
def test_a_data_error_in_step_1_leaves_nothing_and_a_rerun_logs_each_step_once(tmp_path, capfd):
    run_dir = tmp_path / "run"
    data = folder_data(tmp_path / "data", bad_item=1)  # batch 1 of 2 items: the first step fails
    assert cli(run_dir, *data, *QUIET) == 2
    err = capfd.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and "200" in err
    assert not run_dir.exists()  # no config.gin, metrics.jsonl, tb/ or marker from the failed attempt

    data = folder_data(tmp_path / "data")  # the data fixed: the same command again
    assert cli(run_dir, *data, *QUIET) == 0
    assert steps_logged(run_dir) == [1, 2, 3]  # was [1, 1, 2, 3]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_data_error_after_step_2_keeps_the_work_and_resume_continues(tmp_path, capfd, workers):
    """Steps 1-2 trained, no checkpoint due: the bad file of step 3 saves step_2 (as SIGTERM would), exits 2
    with one line naming the file, with or without DataLoader workers; --resume ends where a run on good
    data ends."""
    run_dir = tmp_path / "run"
    bindings = ["train.save_every = 1000", f"train.num_workers = {workers}", *QUIET]
    data = folder_data(tmp_path / "data", bad_item=4)  # items 4-5: step 3
    bad = sorted((tmp_path / "data" / "labels").glob("*.png"))[4]
    if workers:  # a photo over PIL's decompression-bomb limit instead of a bad id
        photo = sorted((tmp_path / "data" / "images").glob("*"))[4]
        photo.write_bytes(declared_png(30000, 30000))
        Image.fromarray(torch.zeros((32, 32), dtype=torch.uint8).numpy()).save(bad)
        bad = photo
    assert cli(run_dir, *data, *bindings) == 2
    err = capfd.readouterr().err
    assert err.startswith(f"error: {bad}: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "DataLoader worker" not in err
    assert f"saved {run_dir / 'step_2'}" in err and "--resume continues from step 2" in err
    assert latest_checkpoint(run_dir).name == "step_2" and steps_logged(run_dir) == [1, 2]
    assert any((run_dir / "tb").iterdir())

    data = folder_data(tmp_path / "data")  # fixed
    assert cli(run_dir, *data, *bindings, resume=True) == 0
    assert steps_logged(run_dir) == [1, 2, 3] and latest_checkpoint(run_dir).name == "step_3"
    assert "Traceback" not in capfd.readouterr().err
    if not workers:
        assert cli(tmp_path / "full", *data, *bindings) == 0
        same_weights(tmp_path / "full" / "step_3", run_dir / "step_3")


def test_an_early_failure_keeps_what_was_in_the_folder_before(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()  # an empty folder made for the run stays, and stays empty
    assert cli(run_dir, *folder_data(tmp_path / "data", bad_item=0), *QUIET) == 2
    assert run_dir.is_dir() and not any(run_dir.iterdir())
    mark_run_dir(run_dir)
    (run_dir / "notes.txt").write_text("mine")  # a marked run with a file of the user's
    assert cli(run_dir, *folder_data(tmp_path / "data2", bad_item=1), *QUIET) == 2
    assert sorted(p.name for p in run_dir.iterdir()) == [MARKER_FILE, "notes.txt"]


def test_resume_without_a_checkpoint_compares_no_architecture_and_logs_each_step_once(tmp_path):
    run_dir = tmp_path / "run"  # a run killed before its first checkpoint: config.gin, one metrics record
    mark_run_dir(run_dir)
    (run_dir / "config.gin").write_text("include 'base/train.gin'\nSPADEGenerator.ngf = 4\n")
    (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 1, "G_GAN": 1.0}) + "\n")
    killed = run_dir / "tb" / "events.out.tfevents.1.killed"  # that attempt's TensorBoard events
    killed.parent.mkdir(parents=True)
    killed.write_bytes(b"")
    assert cli(run_dir, *QUIET, "train.max_steps = 2", resume=True) == 0  # tiny.gin's ngf 8: no weights clash
    assert steps_logged(run_dir) == [1, 2]
    events = sorted((run_dir / "tb").rglob("events.out.tfevents.*"))
    assert events and killed not in events  # dropped, as docs/training.md says, not only hidden
    assert read_state(latest_checkpoint(run_dir))["step"] == 2


# ------------------------------------------------------------------------------------------ 2. marker
def test_a_new_run_is_marked(tmp_path):
    assert cli(tmp_path / "run", "train.max_steps = 1", *QUIET) == 0
    marker = json.loads((tmp_path / "run" / MARKER_FILE).read_text())
    assert marker["condgen"] and marker["format"] == 1


def test_a_folder_that_is_not_a_run_is_refused_untouched(tmp_path, capsys):
    """Not even with a summary.json, a state.json or a step_1/ folder of its own: only a condgen checkpoint
    (step_<N>/ with condgen's state.json) makes an unmarked folder an old condgen run."""
    mine = tmp_path / "mine"
    mine.mkdir()
    files = {"config.gin": "my_setting = 1\n", "metrics.jsonl": "step 7: loss went down\n",
             "summary.json": '{"mine": true}\n', "state.json": '{"step": 3}\n', "notes.md": "# my notes\n",
             "step_1/state.json": '{"step": 1, "note": "my own"}\n'}
    for name, text in files.items():
        (mine / name).parent.mkdir(exist_ok=True)
        (mine / name).write_text(text)
    for resume in (False, True):
        assert cli(mine, resume=resume) == 2
        err = capsys.readouterr().err
        assert f"--run_dir {mine} is a folder that is not empty" in err and "not a condgen run" in err
        assert "Choose a new --run_dir" in err and "Traceback" not in err
    assert sorted(str(p.relative_to(mine)) for p in mine.rglob("*") if p.is_file()) == sorted(files)
    assert all((mine / name).read_text() == text for name, text in files.items())


def test_a_file_as_run_dir_is_named_a_file(tmp_path, capsys):
    path = tmp_path / "a_file"
    path.write_text("x")
    assert cli(path) == 2
    assert f"--run_dir {path} is a file" in capsys.readouterr().err
    assert path.read_text() == "x"


def test_a_run_made_before_the_marker_is_resumed_and_marked(tmp_path):
    run_dir = tmp_path / "old"
    assert cli(run_dir, "train.max_steps = 2", *QUIET) == 0
    (run_dir / MARKER_FILE).unlink()
    (run_dir / LOCK_FILE).unlink()
    assert cli(run_dir, "train.max_steps = 3", *QUIET, resume=True) == 0
    assert read_state(latest_checkpoint(run_dir))["step"] == 3 and (run_dir / MARKER_FILE).is_file()


# -------------------------------------------------------------------------------------------- 3. lock
HOLD_LOCK = """
import sys, time
from condgen.rundir import RunDirLock, mark_run_dir
mark_run_dir(sys.argv[1])
lock = RunDirLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def python_env(**extra):
    threads = {"OMP_NUM_THREADS": "1", "CONDGEN_CPU_THREADS": "1"}
    return {**os.environ, "PYTHONPATH": str(REPO), **threads, **extra}


def test_a_second_trainer_is_refused_naming_the_pid_and_a_dead_holder_is_taken_over(tmp_path, capsys):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE, text=True, env=python_env()
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert cli(run_dir, "train.max_steps = 1", *QUIET) == 2
        err = capsys.readouterr().err
        assert f"is in use by another trainer (pid {holder.pid} on host" in err and "Traceback" not in err
        assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_FILE, MARKER_FILE]  # nothing written
    finally:
        holder.kill()
        holder.wait()
    assert cli(run_dir, "train.max_steps = 1", *QUIET) == 0  # the OS dropped the dead holder's lock
    assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_only_the_main_process_takes_the_lock(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    mark_run_dir(run_dir)
    lock = RunDirLock(run_dir).acquire()  # as if rank 0 of this run held it
    try:
        monkeypatch.setenv("RANK", "1")
        assert cli(run_dir, "train.max_steps = 1", *QUIET) == 0  # a rank > 0 neither locks nor is refused
        monkeypatch.setenv("RANK", "0")
        assert cli(run_dir, "train.max_steps = 2", *QUIET, resume=True) == 2
    finally:
        lock.release()


LAUNCHER = """
import subprocess, sys, time
child = subprocess.Popen(sys.argv[1:], stderr=open(sys.argv[0] + ".stderr", "w"))
print(child.pid, flush=True)
child.wait()
"""


def alive(pid):
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie nobody reaped has exited


def wait_for_steps(run_dir, n, pid, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end and alive(pid):
        if (run_dir / "metrics.jsonl").is_file() and len(steps_logged(run_dir)) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{run_dir} did not reach {n} logged steps")


def train_command(run_dir, *bindings):
    return [
        sys.executable,
        str(RUN_PY),
        "--gin",
        str(TINY),
        "--run_dir",
        str(run_dir),
        "--gin_bindings",
        *QUIET,
        "train.save_every = 1000",
        *bindings,
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_trainer_stops_when_its_launcher_is_killed(tmp_path):
    run_dir = tmp_path / "run"
    script = tmp_path / "launcher.py"
    script.write_text(LAUNCHER)
    command = [sys.executable, str(script), *train_command(run_dir, "train.max_steps = 100000")]
    # what `accelerate launch` sets in every process it starts (LOCAL_RANK too, with a process group)
    env = python_env(ACCELERATE_DYNAMO_BACKEND="NO")
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    child = int(launcher.stdout.readline())
    try:
        wait_for_steps(run_dir, 1, child)
        launcher.kill()  # SIGKILL: the launcher cannot forward anything
        launcher.wait()
        end = time.monotonic() + 60
        while alive(child) and time.monotonic() < end:
            time.sleep(0.1)
        assert not alive(child), "the trainer outlived its launcher"
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
    err = Path(str(script) + ".stderr").read_text()
    assert "stopped by SIGTERM after step" in err and "Traceback" not in err
    assert read_state(latest_checkpoint(run_dir))["step"] < 100000


# ------------------------------------------------------------------------------ 4. killed-save leftovers
def test_a_save_killed_between_the_renames_is_put_back_at_the_next_save(tmp_path, monkeypatch):
    acc, net, opt = setup_run()
    save(acc, tmp_path, 1)
    calls = []
    real_replace = st.os.replace

    def killed_on_the_second_rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed between the renames")
        real_replace(src, dst)

    monkeypatch.setattr(st.os, "replace", killed_on_the_second_rename)
    with pytest.raises(KeyboardInterrupt):
        save(acc, tmp_path, 1)  # re-saving step 1: step_1 -> .step_1.old, then killed
    monkeypatch.undo()
    assert not (tmp_path / "step_1").exists() and is_checkpoint(tmp_path / ".step_1.old")
    save(acc, tmp_path, 2)
    assert not (tmp_path / ".step_1.old").exists()
    assert [p.name for p in st.checkpoint_dirs(tmp_path)] == ["step_1", "step_2"]  # the copy was put back


def test_a_leftover_old_copy_is_deleted_once_the_checkpoint_is_complete(tmp_path, monkeypatch):
    acc, net, opt = setup_run()
    save(acc, tmp_path, 1)
    real_rmtree = st.shutil.rmtree

    def killed_before_deleting_old(path, *args, **kwargs):
        if str(path).endswith(".old") and Path(path).exists():
            raise KeyboardInterrupt("killed after the renames")
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(st.shutil, "rmtree", killed_before_deleting_old)
    with pytest.raises(KeyboardInterrupt):
        save(acc, tmp_path, 1)
    monkeypatch.undo()
    assert is_checkpoint(tmp_path / "step_1") and (tmp_path / ".step_1.old").is_dir()
    save(acc, tmp_path, 2)
    assert not (tmp_path / ".step_1.old").exists()


def test_recovery_at_start_never_deletes_the_only_complete_copy(tmp_path):
    acc, net, opt = setup_run()
    save(acc, tmp_path, 1)
    save(acc, tmp_path, 2)
    os.rename(tmp_path / "step_1", tmp_path / ".step_1.old")  # killed: only the moved-aside copy is complete
    (tmp_path / ".step_2.old").mkdir()  # killed while deleting a leftover: step_2 complete
    (tmp_path / ".step_3.old").mkdir()  # incomplete and no step_3: kept, nothing to decide
    st.recover_checkpoints(tmp_path)
    assert is_checkpoint(tmp_path / "step_1") and is_checkpoint(tmp_path / "step_2")
    assert sorted(p.name for p in tmp_path.glob(".step_*")) == [".step_3.old"]


def test_training_resolves_leftovers_when_it_starts(tmp_path):
    run_dir = tmp_path / "run"
    assert cli(run_dir, "train.max_steps = 2", "train.save_every = 1", "train.keep_last = None", *QUIET) == 0
    os.rename(run_dir / "step_1", run_dir / ".step_1.old")
    assert cli(run_dir, "train.max_steps = 2", *QUIET, resume=True) == 0  # nothing to train, still resolved
    assert not (run_dir / ".step_1.old").exists() and is_checkpoint(run_dir / "step_1")


# ---------------------------------------------------------------------------------------- 5. signals
@pytest.fixture
def _sigint_handled():
    """As in an interactive shell: Python's Ctrl-C handler (a background job starts with SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_an_ignored_signal_stays_ignored():
    from condgen.train.guard import StopSignals

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with StopSignals():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # nohup / background: not ours to catch
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_saves_the_step_exits_130_and_resume_is_bit_identical(
    tmp_path, monkeypatch, capsys, _sigint_handled
):
    bindings = ["train.max_steps = 4", "train.save_every = 1000", *QUIET]
    assert cli(tmp_path / "full", *bindings) == 0
    real_step, calls = loop.update_step, []

    def ctrl_c_in_step_2(s, update, micro):
        calls.append(update.name)
        if calls.count("G") == 2 and update.name == "G":
            assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler, "no SIGINT handler"
            os.kill(os.getpid(), signal.SIGINT)  # arrives mid-step: the step still completes
        return real_step(s, update, micro)

    monkeypatch.setattr(loop, "update_step", ctrl_c_in_step_2)
    run_dir = tmp_path / "cut"
    capsys.readouterr()
    assert cli(run_dir, *bindings) == 130
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert f"stopped by SIGINT after step 2: saved {run_dir / 'step_2'}; --resume continues" in err
    assert "Traceback" not in err
    assert latest_checkpoint(run_dir).name == "step_2" and steps_logged(run_dir) == [1, 2]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    assert cli(run_dir, *bindings, resume=True) == 0
    same_weights(tmp_path / "full" / "step_4", run_dir / "step_4")
    assert steps_logged(run_dir) == [1, 2, 3, 4]


def test_a_signal_before_training_starts_raises_at_once_and_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL, "no handler (it would kill pytest)"
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("the handler should have raised")

    monkeypatch.setattr(loop, "build_run", interrupted)
    run_dir = tmp_path / "run"
    from condgen.cli.gin_setup import parse_gin

    parse_gin([TINY], [])
    with pytest.raises(TrainingInterrupted) as e:
        loop.train(run_dir)
    assert e.value.exit_code == 143 and e.value.checkpoint is None
    assert not run_dir.exists()


def test_sigterm_saves_the_current_step_exits_143_and_resume_reaches_max_steps(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        train_command(run_dir, "train.max_steps = 500"), stderr=subprocess.PIPE, text=True, env=python_env()
    )
    try:
        wait_for_steps(run_dir, 2, proc.pid)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "stopped by SIGTERM after step" in err.strip().splitlines()[-1]
    stopped = read_state(latest_checkpoint(run_dir))["step"]
    assert 2 <= stopped < 500 and steps_logged(run_dir) == list(range(1, stopped + 1))
    total = f"train.max_steps = {stopped + 2}"
    assert cli(run_dir, total, "train.save_every = 1000", *QUIET, resume=True) == 0
    assert read_state(latest_checkpoint(run_dir))["step"] == stopped + 2
    assert cli(tmp_path / "full", total, "train.save_every = 1000", *QUIET) == 0  # uninterrupted
    same_weights(tmp_path / "full" / f"step_{stopped + 2}", latest_checkpoint(run_dir))
