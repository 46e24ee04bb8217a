"""A tiny SDM trains through the same loop as the GANs: one update of one network per step, EMA, samples,
checkpoints, and a run killed mid-way resumes to the bit-identical weights, EMA, optimiser and losses."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from condgen.cli.gin_setup import parse_gin
from condgen.train import loop
from condgen.train.loop import train
from condgen.train.report import read_metrics
from condgen.train.state import latest_checkpoint, read_state

TINY = Path(__file__).with_name("tiny_sdm.gin")


def run(run_dir, *bindings, resume=False):
    parse_gin([TINY], list(bindings))
    return train(run_dir, resume=resume)


def reset_accelerate():
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def test_tiny_sdm_trains_and_resumes_bit_identically(tmp_path, monkeypatch):
    full = run(tmp_path / "full", "train.ema_decay = 0.9")
    state = read_state(full)
    assert state["step"] == 3 and set(state["models"]) == {"G"}  # no discriminator
    records = read_metrics(tmp_path / "full" / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    assert {"mse", "vb", "lr_G"} <= records[0].keys() and "lr_D" not in records[0]
    assert records[0]["lr_G"] == pytest.approx(1e-4)  # train.ttur = False: the base rate
    assert all(0 < r["mse"] < 10 and r["vb"] >= 0 for r in records)
    assert sorted(p.name for p in (tmp_path / "full" / "samples").glob("*.png"))  # sampled by the objective

    reset_accelerate()
    real_step = loop.update_step
    calls = []

    def killed_in_step_3(s, update, micro):
        calls.append(update.name)
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated kill")
        return real_step(s, update, micro)

    monkeypatch.setattr(loop, "update_step", killed_in_step_3)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed", "train.ema_decay = 0.9")
    monkeypatch.undo()
    assert calls == ["G", "G", "G"]  # one update per step
    assert latest_checkpoint(tmp_path / "killed").name == "step_2"
    reset_accelerate()
    resumed = run(tmp_path / "killed", "train.ema_decay = 0.9", resume=True)
    for f in ("model.safetensors", "ema.safetensors"):
        a, b = load_file(full / f), load_file(resumed / f)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f
    a, b = (torch.load(d / "optimizer.bin", weights_only=True)["state"] for d in (full, resumed))
    assert all(torch.equal(a[i]["exp_avg_sq"], b[i]["exp_avg_sq"]) for i in a)
    logged = {r["step"]: r for r in read_metrics(tmp_path / "killed" / "metrics.jsonl")}
    assert all(logged[r["step"]]["mse"] == r["mse"] and logged[r["step"]]["vb"] == r["vb"] for r in records)


def test_a_discriminator_bound_for_sdm_is_refused(tmp_path):
    from condgen.train.setup import SettingsError

    with pytest.raises(SettingsError, match="trains no discriminator"):
        run(tmp_path / "r", "build_gan.discriminator = @MultiscalePatchDiscriminator")
