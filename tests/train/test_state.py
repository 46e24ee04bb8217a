import json

import pytest
import torch
from accelerate import Accelerator
from torch import nn

from condgen.train import state as st


def setup_run():
    torch.manual_seed(0)
    acc = Accelerator(cpu=True)
    net = nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net, opt = acc.prepare(net, opt)
    st.install_portable_hooks(acc)
    return acc, net, opt


def train_a_bit(net, opt):
    opt.zero_grad()
    net(torch.randn(4, 3)).pow(2).sum().backward()
    opt.step()


def save(acc, run_dir, step, keep_last=None):
    return st.save_checkpoint(acc, run_dir, {"step": step, "models": {"G": "model.safetensors"}},
                              config="train.seed = 0\n", keep_last=keep_last)


def test_save_layout_and_load_restores_weights_optimizer_and_rng(tmp_path):
    acc, net, opt = setup_run()
    train_a_bit(net, opt)
    ckpt = save(acc, tmp_path, 1)
    assert ckpt == tmp_path / "step_1"
    names = {p.name for p in ckpt.iterdir()}
    assert {"model.safetensors", "optimizer.bin", "random_states_0.pkl", "config.gin", "state.json"} <= names
    assert (tmp_path / "latest").read_text().strip() == "step_1"
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    expected_noise = torch.rand(3)
    train_a_bit(net, opt)  # move away from the checkpoint: weights, Adam moments and RNG all change
    assert st.load_checkpoint(acc, ckpt)["step"] == 1
    assert all(torch.equal(weights[k], v) for k, v in net.state_dict().items())
    assert torch.equal(torch.rand(3), expected_noise)
    assert st.load_weights(tmp_path, "G").keys() == weights.keys()  # a run dir resolves to its latest


def test_a_crash_before_the_rename_leaves_the_previous_checkpoint_latest(tmp_path, monkeypatch):
    acc, net, opt = setup_run()
    save(acc, tmp_path, 1)
    good = {k: v.clone() for k, v in net.state_dict().items()}
    train_a_bit(net, opt)

    def killed(src, dst):
        raise KeyboardInterrupt("killed during the save")

    monkeypatch.setattr(st.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        save(acc, tmp_path, 2)
    monkeypatch.undo()
    assert (tmp_path / ".step_2.tmp" / "state.json").is_file()  # fully written, never renamed
    assert not (tmp_path / "step_2").exists()
    assert st.latest_checkpoint(tmp_path) == tmp_path / "step_1"
    st.load_checkpoint(acc, st.latest_checkpoint(tmp_path))
    assert all(torch.equal(good[k], v) for k, v in net.state_dict().items())
    save(acc, tmp_path, 2)  # the next save succeeds and sweeps the leftover
    assert not (tmp_path / ".step_2.tmp").exists() and st.latest_checkpoint(tmp_path).name == "step_2"


def test_a_crash_inside_save_state_leaves_latest_intact(tmp_path, monkeypatch):
    acc, net, opt = setup_run()
    save(acc, tmp_path, 4)

    def half_written(output_dir):
        (tmp_path / ".step_8.tmp" / "model.safetensors").write_bytes(b"trunc")
        raise RuntimeError("disk full")

    monkeypatch.setattr(acc, "save_state", half_written)
    with pytest.raises(RuntimeError, match="disk full"):
        save(acc, tmp_path, 8)
    assert st.latest_checkpoint(tmp_path) == tmp_path / "step_4"
    assert [p.name for p in st.checkpoint_dirs(tmp_path)] == ["step_4"]


def test_keep_last_k(tmp_path):
    acc, net, opt = setup_run()
    for step in (1, 2, 3, 4, 5):
        save(acc, tmp_path, step, keep_last=2)
    assert [p.name for p in st.checkpoint_dirs(tmp_path)] == ["step_4", "step_5"]
    assert json.loads((tmp_path / "step_5" / "state.json").read_text())["step"] == 5


def test_a_stale_latest_pointer_falls_back_to_the_newest_complete_checkpoint(tmp_path):
    acc, net, opt = setup_run()
    save(acc, tmp_path, 3)
    save(acc, tmp_path, 6)
    (tmp_path / "latest").write_text("step_9\n")  # names a checkpoint that never completed
    (tmp_path / "step_9").mkdir()  # no state.json: incomplete
    assert st.latest_checkpoint(tmp_path) == tmp_path / "step_6"
    assert st.latest_checkpoint(tmp_path / "nothing_here") is None


def test_load_weights_names_what_exists(tmp_path):
    acc, net, opt = setup_run()
    save(acc, tmp_path, 1)
    with pytest.raises(KeyError, match="there is no 'D'"):
        st.load_weights(tmp_path / "step_1", "D")
    with pytest.raises(FileNotFoundError, match="ema_decay"):
        st.load_weights(tmp_path / "step_1", "ema")


def test_loading_a_run_while_its_trainer_prunes_takes_the_new_latest(tmp_path, monkeypatch):
    """A trainer saving every step with keep_last 1 removes the checkpoint `latest` named between our reading
    it and opening its files: the load retries on the new latest, and never says the user's path is wrong."""
    import json
    import shutil

    from condgen.train import state as st
    from tests.paint.conftest import TINY, random_run

    run = random_run(tmp_path / "run", TINY)
    for step in (1, 2):
        shutil.copytree(run / "step_0", run / f"step_{step}")
        meta = json.loads((run / f"step_{step}" / "state.json").read_text())
        (run / f"step_{step}" / "state.json").write_text(json.dumps(meta | {"step": step}))
    shutil.rmtree(run / "step_0")
    (run / "latest").write_text("step_1\n")
    real, calls = st.checkpoint_problem, []

    def pruned_meanwhile(ckpt):
        calls.append(ckpt.name)
        if ckpt.name == "step_1":  # the trainer saves step_2, points latest at it and prunes step_1
            (run / "latest").write_text("step_2\n")
            shutil.rmtree(run / "step_1")
        return real(ckpt)

    monkeypatch.setattr(st, "checkpoint_problem", pruned_meanwhile)
    gan, spec, info = st.load_run(run)
    assert calls == ["step_1", "step_2"] and info["step"] == 2 and info["checkpoint"] == str(run / "step_2")
