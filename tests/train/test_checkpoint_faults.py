"""Damaged checkpoints, a missing RNG file, imports in a saved config, non-finite state, a full disk.

Each case is what a user meets after a crash, a copy or a download: condgen names the file, falls back
to what is intact or stops with the fix, and never runs code or saves state it should not.
"""

import errno
import json
import sys

import pytest
import torch
from safetensors.torch import load_file

from condgen.cli.train import main
from condgen.rundir import checkpoint_problem, resumable_checkpoint
from tests.train.test_loop import TINY

STEPS = ["--gin_bindings", "train.max_steps = 4", "train.save_every = 2", "train.sample_every = None"]


def train(run_dir, *extra: str) -> int:
    return main(["--gin", str(TINY), "--run_dir", str(run_dir), *STEPS, *extra])


def truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def steps_logged(run_dir) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.bin"])
def test_a_truncated_latest_checkpoint_is_named_and_resume_takes_the_previous_one(tmp_path, name, capsys):
    run_dir = tmp_path / "run"
    assert train(run_dir) == 0
    truncate(run_dir / "step_4" / name)
    problem = checkpoint_problem(run_dir / "step_4")
    assert name in problem and "truncated" in problem
    assert resumable_checkpoint(run_dir)[0] == run_dir / "step_2"
    with pytest.warns(UserWarning, match=rf"step_4/{name} is truncated"):
        assert train(run_dir, "train.max_steps = 5", "--resume") == 0
    assert "resumed from" in capsys.readouterr().out
    assert json.loads((run_dir / "step_5" / "state.json").read_text())["step"] == 5
    assert steps_logged(run_dir) == [1, 2, 3, 4, 5]  # steps 3-4 logged again, once, after the fallback


def test_loading_a_truncated_checkpoint_names_the_file_and_the_complete_one(tmp_path):
    from condgen.rundir import CheckpointError
    from condgen.train.state import load_run

    run_dir = tmp_path / "run"
    assert train(run_dir) == 0
    truncate(run_dir / "step_4" / "model.safetensors")
    with pytest.raises(
        CheckpointError, match=r"step_4/model.safetensors is truncated.*complete checkpoint .*step_2"
    ):
        load_run(run_dir)
    load_run(run_dir / "step_2")


def test_an_old_checkpoint_without_a_size_list_is_checked_by_its_safetensors_headers(tmp_path):
    run_dir = tmp_path / "run"
    assert train(run_dir, "train.max_steps = 2") == 0
    state_file = run_dir / "step_2" / "state.json"
    state = json.loads(state_file.read_text())
    del state["files"]
    state_file.write_text(json.dumps(state))
    assert checkpoint_problem(run_dir / "step_2") is None
    truncate(run_dir / "step_2" / "model_1.safetensors", 0.9)
    assert "model_1.safetensors is truncated" in checkpoint_problem(run_dir / "step_2")


def test_no_complete_checkpoint_left_stops_naming_the_files(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert train(run_dir, "train.max_steps = 2") == 0
    truncate(run_dir / "step_2" / "model.safetensors")
    assert train(run_dir, "--resume") == 2
    err = capsys.readouterr().err
    assert "no complete checkpoint" in err and "step_2/model.safetensors is truncated" in err
    assert "Traceback" not in err


def test_a_missing_rng_file_refuses_to_resume_unless_told(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert train(run_dir, "train.max_steps = 2") == 0
    (run_dir / "step_2" / "random_states_0.pkl").unlink()
    state_file = run_dir / "step_2" / "state.json"  # as if copied without it: no size list to notice it
    state = json.loads(state_file.read_text())
    state["files"].pop("random_states_0.pkl")
    state_file.write_text(json.dumps(state))
    assert train(run_dir, "train.max_steps = 3", "--resume") == 2
    err = capsys.readouterr().err
    assert "random_states_0.pkl is missing" in err and "--new_rng" in err
    assert not (run_dir / "step_3").exists()
    assert train(run_dir, "train.max_steps = 3", "--resume", "--new_rng") == 0
    assert (run_dir / "step_3" / "state.json").is_file()


def test_imports_in_a_saved_config_are_not_executed(tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    assert train(run_dir, "train.max_steps = 2") == 0
    marker = tmp_path / "ran.txt"
    (tmp_path / "evil_module.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for config in [run_dir / "config.gin", run_dir / "step_2" / "config.gin"]:
        config.write_text("import evil_module\n" + config.read_text())

    from condgen.config import UntrustedImportError
    from condgen.train.state import load_run

    refused = r"config.gin, line 1: 'import evil_module'.*--gin_bindings"
    with pytest.raises(UntrustedImportError, match=refused):
        load_run(run_dir)
    assert train(run_dir, "train.max_steps = 3", "--resume") == 2
    err = capsys.readouterr().err
    assert "'import evil_module'" in err and "does not run the imports" in err
    assert not marker.exists() and "evil_module" not in sys.modules
    # a module the user imports on purpose is accepted (its line is not run again)
    import json as already_imported  # noqa: F401

    (run_dir / "step_2" / "config.gin").write_text(
        "import json\n" + (run_dir / "step_2" / "config.gin").read_text().replace("import evil_module\n", "")
    )
    load_run(run_dir)


def test_a_non_finite_state_is_never_saved_nor_called_good(tmp_path, capsys, monkeypatch):
    """Losses can stay finite one step longer than the state: the guard checks the state before saving."""
    import condgen.train.loop as loop

    real = loop.update_step

    def poisoned(s, update, micro):
        losses = real(s, update, micro)
        if update.name == "D" and s.opt_D.state and next(iter(s.opt_D.state.values()))["step"] >= 3:
            with torch.no_grad():  # what an overflow leaves behind: inf BatchNorm statistics, huge weights
                for name, b in s.accelerator.unwrap_model(s.G).named_buffers():
                    if name.endswith("running_var"):
                        b.fill_(float("inf"))
        return losses

    monkeypatch.setattr(loop, "update_step", poisoned)
    run_dir = tmp_path / "run"
    assert train(run_dir, "train.save_every = 1", "SPADE.param_free = 'batch'") == 1
    err = capsys.readouterr().err
    assert "the training state at step 3 is not finite (G." in err and "running_var" in err
    assert f"the last good checkpoint is {run_dir / 'step_2'}" in err
    assert not (run_dir / "step_3").exists()
    for f in (run_dir / "step_2").glob("model*.safetensors"):
        assert all(torch.isfinite(t).all() for t in load_file(f).values())


def test_a_full_disk_says_so_names_the_path_and_removes_the_partial_copy(tmp_path, capsys, monkeypatch):
    from accelerate import Accelerator

    real = Accelerator.save_state
    calls = []

    def fill_disk(self, output_dir=None, **kw):
        calls.append(output_dir)
        if len(calls) == 2:  # the second checkpoint: torch's zip writer fails half way
            (torch.save({"w": torch.zeros(10)}, f"{output_dir}/optimizer.bin"))
            raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 512 vs 498")
        return real(self, output_dir, **kw)

    monkeypatch.setattr(Accelerator, "save_state", fill_disk)
    run_dir = tmp_path / "run"
    assert train(run_dir) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and str(run_dir / "step_4") in err and "unexpected pos" not in err
    assert f"the previous checkpoint {run_dir / 'step_2'} is intact" in err and "--resume" in err
    assert not list(run_dir.glob(".step_*")) and checkpoint_problem(run_dir / "step_2") is None

    monkeypatch.setattr(Accelerator, "save_state", real)
    assert train(run_dir, "--resume") == 0  # after freeing space: continues from step 2


def test_disk_full_is_recognised_by_errno(tmp_path):
    from condgen.train.state import _is_disk_full

    assert _is_disk_full(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("safetensors write failed") from inner
    except RuntimeError as outer:
        assert _is_disk_full(outer, tmp_path)
    assert not _is_disk_full(RuntimeError("a bug"), tmp_path)
