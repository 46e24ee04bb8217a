import functools
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from condgen.cli.gin_setup import parse_gin
from condgen.losses.gan import GANLoss
from condgen.objectives import Pix2PixHDObjective
from condgen.train import loop, setup
from condgen.train.loop import NonFiniteLossError, train
from condgen.train.report import read_metrics
from condgen.train.state import latest_checkpoint, load_weights

TINY = Path(__file__).with_name("tiny.gin")
VAE_EMA_DECAY = [  # the resume test covers every stateful part: encoder noise, EMA, LR decay across epochs
    "SPADEGenerator.use_vae = True", "SPADEGenerator.z_dim = 16", "build_gan.encoder = @VAEEncoder",
    "VAEEncoder.ngf = 4", "VAEEncoder.z_dim = 16", "train.ema_decay = 0.9",
    "train.max_steps = None", "train.niter = 1", "train.niter_decay = 2",  # 3 epochs x 2 steps, LR falls
    "SyntheticLandscapes.length = 5",  # 2 batches of 2 per epoch, the fifth item is dropped
    "train.save_every = 3",
]


def run(run_dir, *bindings, resume=False, **kwargs):
    parse_gin([TINY], list(bindings))
    return train(run_dir, resume=resume, **kwargs)


def weights(ckpt, name="G"):
    return load_weights(ckpt, name)


def test_one_step_changes_weights_and_losses_are_finite(tmp_path):
    parse_gin([TINY], ["train.max_steps = 1", "train.save_every = None"])
    from condgen.data.landscapes import SyntheticLandscapes
    from condgen.train.build import build_gan

    torch.manual_seed(0)
    initial = build_gan(SyntheticLandscapes().spec)  # train() seeds 0 too: the same initial networks
    ckpt = train(tmp_path)
    for name, net in (("G", initial.G), ("D", initial.D)):
        after = weights(ckpt, name)
        changed = [k for k, v in net.state_dict().items() if not torch.equal(v, after[k])]
        assert any("conv_img" in k or "model0" in k for k in changed), name
    record = read_metrics(tmp_path / "metrics.jsonl")[0]
    assert {"G_GAN", "G_feat", "D_fake", "D_real", "lr_G", "lr_D", "images_per_s"} <= record.keys()
    assert record["lr_G"] == pytest.approx(1e-4) and record["lr_D"] == pytest.approx(4e-4)
    assert all(torch.isfinite(torch.tensor(record[k])) for k in ("G_GAN", "G_feat", "D_fake", "D_real"))


def test_interrupted_and_resumed_run_ends_bit_identical(tmp_path, monkeypatch):
    full = run(tmp_path / "full", *VAE_EMA_DECAY)
    assert json.loads((full / "state.json").read_text())["step"] == 6

    real_step = loop.update_step
    calls = {"n": 0}

    def killed_at_step_5(s, update, micro):
        calls["n"] += update.name == "G"
        if calls["n"] == 5:
            raise KeyboardInterrupt("simulated kill")
        return real_step(s, update, micro)

    monkeypatch.setattr(loop, "update_step", killed_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed", *VAE_EMA_DECAY)
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path / "killed").name == "step_3"
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    resumed = run(tmp_path / "killed", *VAE_EMA_DECAY, resume=True)
    assert resumed.name == "step_6"
    for f in ("model.safetensors", "model_1.safetensors", "model_2.safetensors", "ema.safetensors"):
        a, b = load_file(full / f), load_file(resumed / f)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), f
    for f in ("optimizer.bin", "optimizer_1.bin"):
        a, b = (torch.load(d / f, weights_only=True)["state"] for d in (full, resumed))
        assert all(torch.equal(a[i]["exp_avg_sq"], b[i]["exp_avg_sq"]) for i in a), f
    logged = {r["step"]: r for r in read_metrics(tmp_path / "killed" / "metrics.jsonl")}
    for r in read_metrics(tmp_path / "full" / "metrics.jsonl"):  # same losses and LR decay, step by step
        assert logged[r["step"]]["G_GAN"] == r["G_GAN"] and logged[r["step"]]["lr_G"] == r["lr_G"]
    assert [logged[s]["lr_G"] for s in (2, 4, 6)] == pytest.approx([1e-4, 1e-4, 5e-5])


class NaNAfter(GANLoss):
    """Hinge loss whose generator term turns NaN on its third call."""

    calls = 0

    def forward(self, logits, *, real, for_discriminator=True):
        loss = super().forward(logits, real=real, for_discriminator=for_discriminator)
        if not for_discriminator:
            NaNAfter.calls += 1
            if NaNAfter.calls == 3:
                return loss * float("nan")
        return loss


def test_nan_guard_names_the_loss_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    parse_gin([TINY], ["train.max_steps = 5", "train.save_every = 2"])
    NaNAfter.calls = 0
    with pytest.raises(NonFiniteLossError, match=r"step 3 .*G_GAN = nan") as err:
        train(tmp_path, objective=functools.partial(Pix2PixHDObjective, gan_loss=NaNAfter))
    assert "step_2" in str(err.value)
    assert latest_checkpoint(tmp_path).name == "step_2"
    assert all(torch.isfinite(v).all() for v in weights(tmp_path).values())


def test_run_directory_layout_and_operative_config(tmp_path):
    run(tmp_path, "train.max_steps = 3", "train.save_every = 2", "train.keep_last = 1")
    assert (tmp_path / "latest").read_text().strip() == "step_3"
    assert [p.name for p in tmp_path.glob("step_*")] == ["step_3"]  # keep_last = 1
    config = (tmp_path / "config.gin").read_text()
    assert "SPADEGenerator.ngf = 8" in config and "Pix2PixHDObjective.lambda_feat = 10.0" in config
    assert (tmp_path / "step_3" / "config.gin").read_text() == config
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_000002.png", "step_000003.png"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"loss/G_GAN", "loss/D_real", "lr/G", "lr/D", "speed/images_per_s"} <= scalars
    assert events.Tags()["images"] == ["samples/label_real_fake"]
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["checkpoint"] == str(tmp_path / "step_3") and len(summary["weights_sha256"]) == 1
    with pytest.raises(FileExistsError, match="--resume"):  # never overwrite a run by accident
        run(tmp_path, "train.max_steps = 3")


def test_resume_of_a_finished_run_changes_nothing_and_extends_with_more_steps(tmp_path):
    first = run(tmp_path, "train.max_steps = 2")
    same = run(tmp_path, "train.max_steps = 2", resume=True)
    assert same == first
    longer = run(tmp_path, "train.max_steps = 3", resume=True)
    assert longer.name == "step_3"
    shorter = run(tmp_path, "train.max_steps = 1", resume=True)  # nothing to do, nothing relabelled
    assert shorter.name == "step_3"
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_2", "step_3"]


def test_grad_accum_and_d_steps_per_g(tmp_path):
    run(tmp_path, "train.max_steps = 2", "train.grad_accum = 2", "train.D_steps_per_G = 2",
        "SyntheticLandscapes.length = 8")
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert "G_GAN" in records[0] and "G_GAN" not in records[1]  # G steps on steps 0, 2, ...
    assert json.loads((tmp_path / "step_2" / "state.json").read_text())["grad_accum"] == 2


def test_bad_settings_fail_before_building_anything(tmp_path):
    with pytest.raises(ValueError, match="mixed_precision = 'fp8'"):
        run(tmp_path, "train.mixed_precision = 'fp8'")
    assert not tmp_path.joinpath("config.gin").exists()


def test_bf16_autocast_with_the_vgg_loss_and_ema(tmp_path):
    ckpt = run(tmp_path, "train.max_steps = 2", "train.mixed_precision = 'bf16'",
               "Pix2PixHDObjective.lambda_vgg = 10.0",
               "VGGLoss.random_init = True", "train.ema_decay = 0.5")
    record = read_metrics(tmp_path / "metrics.jsonl")[-1]
    assert record["G_VGG"] > 0 and all(torch.isfinite(torch.tensor(v)) for v in record.values())
    assert json.loads((ckpt / "state.json").read_text())["mixed_precision"] == "bf16"
    G, ema = weights(ckpt, "G"), weights(ckpt, "ema")
    assert ema.keys() == G.keys() and any(not torch.equal(G[k], ema[k]) for k in G)


def test_load_networks_rebuilds_the_run_for_evaluation(tmp_path):
    from condgen.train.state import load_networks

    ckpt = run(tmp_path, "train.max_steps = 1")
    import gin

    gin.clear_config()  # as in a fresh evaluation process
    gan, spec = load_networks(tmp_path)
    assert spec.label_nc == 9 and spec.crop_size == 32 and not gan.G.training
    saved = weights(ckpt, "G")
    assert all(torch.equal(v, saved[k]) for k, v in gan.G.state_dict().items())
    seg = torch.zeros(1, spec.semantic_nc, 32, 32)
    seg[:, 0] = 1
    assert gan.G(seg).shape == (1, 3, 32, 32)


def test_grad_accum_equals_the_larger_batch(tmp_path):
    # per-sample norms and no spectral norm (its power iteration advances once per forward): then two
    # micro-batches of 1 must give the gradients of one batch of 2, for G and for D. With TTUR, Adam's
    # beta1 = 0, so its first moment after one step is the gradient itself.
    exact = ["SPADE.param_free = 'instance'", "SPADEResBlock.spectral = False",
             "MultiscalePatchDiscriminator.spectral = False", "train.max_steps = 1",
             "train.save_every = None", "SyntheticLandscapes.crop_size = 64"]  # instance norm: not 1x1
    big = run(tmp_path / "big", *exact, "BATCH_SIZE = 2")
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    accumulated = run(tmp_path / "accum", *exact, "BATCH_SIZE = 1", "train.grad_accum = 2")
    for f in ("optimizer.bin", "optimizer_1.bin"):  # G, then D
        a, b = (torch.load(d / f, weights_only=True)["state"] for d in (big, accumulated))
        scale = max(s["exp_avg"].norm() for s in a.values())
        for i in a:  # biases right before an instance norm have exactly-zero gradients (~1e-10 in floats)
            ga, gb = a[i]["exp_avg"], b[i]["exp_avg"]
            if ga.norm() > 1e-6 * scale:
                assert (ga - gb).norm() / ga.norm() < 1e-3, (f, i)
    assert read_metrics(tmp_path / "big" / "metrics.jsonl")[0]["G_GAN"] == pytest.approx(
        read_metrics(tmp_path / "accum" / "metrics.jsonl")[0]["G_GAN"], rel=1e-5)


def test_speed_options_channels_last_and_fused_adam_save_and_resume(tmp_path):
    speed = ["SpeedOptions.channels_last = True", "SpeedOptions.fused_adam = True"]
    ckpt = run(tmp_path, "train.max_steps = 2", *speed)
    assert all(v.is_contiguous() for v in weights(ckpt).values())  # saved in the standard layout
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    run(tmp_path, "train.max_steps = 3", *speed, resume=True)  # loads back into channels-last weights
    record = read_metrics(tmp_path / "metrics.jsonl")[-1]
    assert record["step"] == 3 and all(torch.isfinite(torch.tensor(record[k])) for k in ("G_GAN", "D_real"))


def test_cpu_run_says_when_cores_sit_idle(monkeypatch, capsys):
    monkeypatch.setattr(setup.os, "cpu_count", lambda: 4)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    setup.note_idle_cores(1)  # the tests' autouse fixture runs torch on one thread
    out = capsys.readouterr().out
    assert "1 thread(s) x 1 process(es) on 4 cores" in out and "--num_cpu_threads_per_process 4" in out
    setup.note_idle_cores(2)
    assert "--num_cpu_threads_per_process 2" in capsys.readouterr().out
    setup.note_idle_cores(4)  # 1 thread x 4 processes: every core busy
    assert capsys.readouterr().out == ""


def test_a_process_accelerate_launch_left_with_one_thread_gets_its_cores(monkeypatch, capsys):
    import torch as _torch

    monkeypatch.setattr(setup.os, "cpu_count", lambda: 4)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("CONDGEN_CPU_THREADS", raising=False)
    before = _torch.get_num_threads()
    try:
        _torch.set_num_threads(1)
        assert setup.use_cpu_cores(1) == 1  # not launched by accelerate: OMP_NUM_THREADS=1 is the user's
        monkeypatch.setenv("ACCELERATE_DYNAMO_BACKEND", "NO")  # what `accelerate launch` sets
        assert setup.use_cpu_cores(1) == 4 and "using 4" in capsys.readouterr().out
        _torch.set_num_threads(1)
        assert setup.use_cpu_cores(2) == 2  # two processes share the four cores
        monkeypatch.setenv("CONDGEN_CPU_THREADS", "1")
        assert setup.use_cpu_cores(1) == 1  # the user's choice wins
    finally:
        _torch.set_num_threads(before)


def test_sample_grids_of_small_images_are_enlarged_for_viewing():
    from condgen.train.report import sample_grid

    label, real, fake = (torch.rand(2, 3, 64, 64) * 2 - 1 for _ in range(3))
    grid = sample_grid(label, real, fake)
    assert grid.shape == (3, 2 * 130 - 2, 3 * 130 - 2)  # 64 px -> 128 px tiles, 2 px gaps: 388 px wide
    assert torch.equal(grid[:, 0:2, 0:2], ((label[0, :, :1, :1].expand(3, 2, 2)) + 1) / 2)  # pixel repetition
    assert sample_grid(label, real, fake, upscale=1).shape == (3, 2 * 66 - 2, 3 * 66 - 2)
    assert sample_grid(*(torch.rand(1, 3, 256, 256) for _ in range(3))).shape == (3, 256, 3 * 258 - 2)
