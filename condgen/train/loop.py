"""The GAN training loop with Accelerate (SPADE Sec. 4 / appendix A; CC-FPSE Sec. 4).

Per step, as the official trainer: a G step (hinge GAN + feature matching + VGG (+ KL)), then a D step on the
same batch with the fake detached and G run under no_grad; fake and real go through D as one batch. TTUR,
Adam betas (0, 0.9) and the linear decay are in `schedule.py`.
Differences from the official code: G, D (and E) are separate Accelerate-prepared modules, so DDP never sees
a module without gradients (D's forward in the G step runs under `no_sync` and only G/E parameters receive
gradients); gradient accumulation sums `grad_accum` micro-batches into one G update, then one D update, so
it equals a larger batch; checkpoints are atomic Accelerate states; data order is a function of the seed.
Mixed precision: 'bf16' needs no loss scaling (recommended on GPUs that have it); 'fp16' uses Accelerate's
one dynamic GradScaler for both optimisers, updated after each of their steps: an overflow in either halves
the common scale and skips only that optimiser's step (its weights stay as they were). Skipped steps are
normal early in fp16 training; the NaN guard watches the losses, not the scaled gradients.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import gin
import torch
from torch import Tensor, nn

from condgen.data.labels import encode_labels
from condgen.data.spec import DataSpec
from condgen.data.visualize import colorize
from condgen.objectives import Objective, Pix2PixHDObjective
from condgen.objectives.base import total
from condgen.train import schedule
from condgen.train.build import GAN, build_gan, convert_sync_batchnorm
from condgen.train.data import batches_per_epoch, make_loader
from condgen.train.report import MetricsLog, sample_grid, save_png
from condgen.train.speed import SpeedOptions
from condgen.train.state import (
    CONFIG_FILE,
    checkpoint_dirs,
    install_portable_hooks,
    latest_checkpoint,
    load_checkpoint,
    read_state,
    save_checkpoint,
)

log = logging.getLogger("condgen.train")
MIXED_PRECISION = ("no", "bf16", "fp16")


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stopped before saving anything from that step."""


@dataclasses.dataclass
class StepContext:
    """What one training step needs: the prepared networks, optimisers and the objective."""

    accelerator: Any
    G: nn.Module
    D: nn.Module
    E: nn.Module | None
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    objective: Objective


# ----------------------------------------------------------------------------------------------- the GAN step
def generator_step(s: StepContext, batches: list[tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
    """One G (+E) update from the micro-batches; D is only read (its parameters get no gradient)."""
    params = [p for opt_group in s.opt_G.param_groups for p in opt_group["params"] if p.requires_grad]
    s.opt_G.zero_grad(set_to_none=True)
    totals: dict[str, Tensor] = {}
    for i, (seg, real) in enumerate(batches):
        sync = _sync_on_last(s, i, len(batches), s.G, s.E)
        with sync, s.accelerator.no_sync(s.D), s.accelerator.autocast():
            losses = s.objective.generator_losses(s.G, s.D, s.E, seg, real)
        s.accelerator.backward(total(losses), inputs=params)
        _add(totals, losses, len(batches))
    s.opt_G.step()
    return totals


def discriminator_step(s: StepContext, batches: list[tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
    """One D update; the objective generates the fake with G (and E) under no_grad."""
    s.opt_D.zero_grad(set_to_none=True)
    totals: dict[str, Tensor] = {}
    for i, (seg, real) in enumerate(batches):
        with _sync_on_last(s, i, len(batches), s.D), s.accelerator.autocast():
            losses = s.objective.discriminator_losses(s.G, s.D, s.E, seg, real)
        s.accelerator.backward(total(losses))
        _add(totals, losses, len(batches))
    s.opt_D.step()
    return totals


def _sync_on_last(s: StepContext, i: int, n: int, *models: nn.Module | None) -> contextlib.ExitStack:
    """Skip DDP's gradient all-reduce on every micro-batch but the last (gradient accumulation)."""
    stack = contextlib.ExitStack()
    if i < n - 1:
        for m in models:
            if m is not None:
                stack.enter_context(s.accelerator.no_sync(m))
    return stack


def _add(totals: dict[str, Tensor], losses: dict[str, Tensor], n: int) -> None:
    for k, v in losses.items():
        totals[k] = totals.get(k, 0) + v.detach().float() / n


# ------------------------------------------------------------------------------------------------ the run
@gin.configurable(denylist=["run_dir", "resume"])
def train(
    run_dir: str | Path,
    *,
    resume: bool = False,
    dataset: Any = gin.REQUIRED,
    batch_size: int = 1,
    num_workers: int = 0,
    shuffle: bool = True,
    niter: int = 50,
    niter_decay: int = 0,
    max_steps: int | None = None,
    lr: float = 2e-4,
    ttur: bool = True,
    betas: tuple[float, float] | None = None,
    D_steps_per_G: int = 1,
    objective: Any = Pix2PixHDObjective,
    mixed_precision: str | None = None,
    grad_accum: int = 1,
    ema_decay: float | None = None,
    seed: int = 0,
    save_every: int | None = 5000,
    keep_last: int | None = 3,
    sample_every: int | None = 1000,
    num_samples: int = 8,
    log_every: int = 50,
    progress: bool = True,
) -> Path:
    """Train the GAN that `build_gan` describes on `dataset`; returns the final checkpoint folder.

    Args:
        run_dir: where config, metrics, samples, TensorBoard logs and checkpoints go (see `docs`/README).
        resume: continue from the latest checkpoint in `run_dir` (a fresh start when there is none).
        dataset: a dataset class (`@SyntheticLandscapes`, `@CocoStuff`, ...), called without arguments;
            items are dicts with `label`, `image` and optionally `instance`, and it has a `.spec`.
        batch_size: items per process per micro-batch (the paper: 32 = 8 GPUs x 4).
        num_workers: DataLoader worker processes (0 = load in the training process; the batches and the
            result do not depend on it).
        niter, niter_decay: epochs at the base rate, then epochs of linear decay (official defaults 50, 0).
        max_steps: stop after this many steps instead (tiny runs and tests); the LR schedule still
            follows the epochs.
        lr, ttur, betas: base rate; TTUR gives G lr/2 and D 2 lr with betas (0, 0.9); `ttur=False` is the
            official `--no_TTUR` (both lr, betas (0.5, 0.999)); `betas` overrides.
        D_steps_per_G: a G step runs every this many steps, a D step every step (official).
        objective: the objective class (`@Pix2PixHDObjective`: SPADE's / CC-FPSE's losses, whose weights
            are its own bindings, e.g. `Pix2PixHDObjective.lambda_vgg = 0.0`).
        mixed_precision: 'no' | 'bf16' | 'fp16' (scaler policy: module docstring); None takes
            `accelerate launch --mixed_precision` (default 'no').
        grad_accum: micro-batches per update (an update = one G step and one D step on all of them).
        ema_decay: keep an exponential moving average of G with this decay (e.g. 0.999); samples then use it.
        seed: seeds initialisation, data order, augmentation and noise.
        save_every, keep_last: checkpoint every so many steps (and at the end); keep the newest K.
        sample_every, num_samples: write a label | real | fake grid of the first items every so many steps.
        log_every: steps between metrics records (JSONL + TensorBoard) and progress-bar updates.
        progress: show the progress bar (main process only).
    Speed switches (channels-last, torch.compile, fused Adam, cuDNN autotuning) are `SpeedOptions.*`
    bindings (`condgen/train/speed.py`); they leave the results of the step unchanged within tolerance.
    """
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed

    run_dir = Path(run_dir)
    _check_settings(mixed_precision, grad_accum, D_steps_per_G, batch_size, ema_decay, num_samples, keep_last)
    ckpt = latest_checkpoint(run_dir) if resume else None
    if not resume and checkpoint_dirs(run_dir):
        raise FileExistsError(
            f"{run_dir} already holds checkpoints (latest {latest_checkpoint(run_dir).name}); pass --resume "
            "to continue that run, or choose a new --run_dir"
        )
    accelerator = Accelerator(
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=grad_accum,
        log_with="tensorboard",
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir)),
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:  # `accelerate launch --multi_gpu` without GPUs, for one
        raise RuntimeError(
            f"{launched} processes were launched but Accelerate joined {accelerator.num_processes} of them, "
            "so each would train alone on the same run_dir. Without GPUs, launch with `ACCELERATE_USE_CPU=1 "
            f"accelerate launch --multi_gpu --num_processes {launched} experiments/run.py ...` (gloo), or "
            f"`ACCELERATE_USE_CPU=1 torchrun --nproc_per_node {launched} experiments/run.py ...`"
        )
    main, device = accelerator.is_main_process, accelerator.device
    if main and device.type == "cpu":
        _note_idle_cores(accelerator.num_processes)
    if resume and ckpt is None and main:
        print(f"--resume: no checkpoint in {run_dir} yet, starting a new run")

    # --- data, networks, losses, optimisers (identical initialisation on every process)
    set_seed(seed)
    data = dataset()
    spec: DataSpec = data.spec
    gan = build_gan(spec)
    per_epoch = batches_per_epoch(len(data), batch_size, accelerator.num_processes)
    steps = schedule.total_steps(
        niter=niter, niter_decay=niter_decay, batches_per_epoch=per_epoch, grad_accum=grad_accum,
        max_steps=max_steps,
    )
    lr_G, lr_D, betas = schedule.optimizer_settings(lr, ttur=ttur, betas=betas)
    ema = copy.deepcopy(gan.G).eval().requires_grad_(False) if ema_decay is not None else None
    speed = SpeedOptions()  # channels_last / compile / fused Adam / cuDNN autotuning, all off by default
    speed.configure_backends(accelerator.device)
    for net in gan.named().values():
        convert_sync_batchnorm(
            net, device_type=accelerator.device.type, num_processes=accelerator.num_processes
        )
        speed.to_memory_format(net)
    objective_ = objective().to(accelerator.device)
    g_params = [*gan.G.parameters(), *(gan.E.parameters() if gan.E is not None else [])]
    opt_G = speed.adam(g_params, lr=lr_G, betas=betas)
    opt_D = speed.adam(gan.D.parameters(), lr=lr_D, betas=betas)
    nets = accelerator.prepare(*gan.named().values())
    nets = nets if isinstance(nets, tuple) else (nets,)
    opt_G, opt_D = accelerator.prepare(opt_G, opt_D)
    prepared = dict(zip(gan.named(), nets, strict=True))
    install_portable_hooks(accelerator)
    if ema is not None:
        ema.to(accelerator.device)
    extra = {"ema": ema} if ema is not None else None  # saved beside Accelerate's state
    compiled = {k: speed.compiled(v) for k, v in prepared.items()}  # wrappers; checkpoints keep the keys
    s = StepContext(accelerator, compiled["G"], compiled["D"], compiled.get("E"), opt_G, opt_D, objective_)

    # --- the run directory: operative config (complete now: everything has been built), metrics, samples
    config = gin.operative_config_str()
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG_FILE).write_text(config)
    start = 0
    if ckpt is not None:
        state = load_checkpoint(accelerator, ckpt, extra=extra)
        start = int(state["step"])
        _warn_layout_change(state, accelerator.num_processes, batch_size, grad_accum, main)
        if main:
            print(f"resumed from {ckpt} at step {start}")
            if start >= steps:
                print(f"the run already has {start} >= {steps} steps: nothing to train (see train.max_steps)")
    else:
        set_seed(seed, device_specific=True)  # per-process noise from here on
    fixed = _fixed_samples(data, num_samples, seed)
    # a resumed run logs the steps after its checkpoint again: drop the first run's records of them
    accelerator.init_trackers("tb", init_kwargs={"tensorboard": {"purge_step": start + 1} if start else {}})
    if main and start == 0:
        _tensorboard(accelerator, lambda w: w.add_text("config.gin", _as_markdown(config), 0))
    metrics = MetricsLog(run_dir / "metrics.jsonl", enabled=main)
    if main and start:
        metrics.truncate_after(start)
    loader = make_loader(
        data, batch_size, num_processes=accelerator.num_processes, process_index=accelerator.process_index,
        seed=seed, start=start * grad_accum, num_workers=num_workers, shuffle=shuffle,
        pin_memory=speed.pin(accelerator.device),
    )
    batches = iter(loader)
    images_per_step = batch_size * accelerator.num_processes * grad_accum

    def save(step: int, epoch: int) -> Path:
        state = _state(step, epoch, accelerator, batch_size, grad_accum, seed, gan, spec)
        return save_checkpoint(accelerator, run_dir, state, config=config, keep_last=keep_last, extra=extra)

    bar = _progress_bar(steps, start, enabled=main and progress)
    t_run, t_log, last_logged = time.perf_counter(), time.perf_counter(), start
    final = ckpt
    for step in range(start, steps):
        where = schedule.Progress(step, grad_accum, per_epoch)
        factor = schedule.lr_factor(where.epoch, niter, niter_decay)
        _set_lr(opt_G, lr_G * factor)
        _set_lr(opt_D, lr_D * factor)
        micro = [speed.inputs(*_to_device(next(batches), spec, device)) for _ in range(grad_accum)]
        losses: dict[str, Tensor] = {}
        if step % D_steps_per_G == 0:
            losses |= generator_step(s, micro)
            if ema is not None:
                _ema_update(ema, accelerator.unwrap_model(s.G), ema_decay)
        losses |= discriminator_step(s, micro)
        values = _check_finite(accelerator, losses, step + 1, where.epoch, run_dir)

        done = step + 1
        if schedule.is_due(done, log_every, steps):
            now = time.perf_counter()
            ips = (done - last_logged) * images_per_step / max(now - t_log, 1e-9)
            t_log, last_logged = now, done
            record = {"step": done, "epoch": where.epoch, "lr_G": lr_G * factor, "lr_D": lr_D * factor,
                      **values, "images_per_s": round(ips, 3)}
            metrics.write(record)
            scalars = {"epoch": where.epoch, "lr/G": lr_G * factor, "lr/D": lr_D * factor,
                       "speed/images_per_s": ips, **{f"loss/{k}": v for k, v in values.items()}}
            accelerator.log(scalars, step=done)
            postfix = {**{k: f"{v:.3g}" for k, v in values.items()}, "img/s": f"{ips:.1f}"}
            bar.set_postfix(postfix, refresh=False)
        bar.update(1)
        if schedule.is_due(done, sample_every, steps) and main:
            net = ema if ema is not None else accelerator.unwrap_model(s.G)
            enc = accelerator.unwrap_model(s.E) if s.E is not None else None
            palette = getattr(data, "PALETTE", None)
            _write_samples(accelerator, run_dir, done, net, enc, fixed, spec, seed, palette)
        if schedule.is_due(done, save_every, steps):
            final = save(done, where.epoch)
    bar.close()
    if start < steps and (final is None or read_state(final)["step"] != steps):  # the end is always saved
        final = save(steps, schedule.Progress(steps, grad_accum, per_epoch).epoch)
    hashes = _check_replicas_identical(accelerator, [s.G, s.D] + ([s.E] if s.E is not None else []))
    wall = time.perf_counter() - t_run
    if main:
        summary = {
            "step": steps, "checkpoint": str(final), "config": str(run_dir / CONFIG_FILE),
            "metrics": str(run_dir / "metrics.jsonl"), "samples": str(run_dir / "samples"),
            "tensorboard": str(run_dir / "tb"), "processes": accelerator.num_processes,
            "wall_s": round(wall, 1),
            "images_per_s": round((steps - start) * images_per_step / max(wall, 1e-9), 3),
            "weights_sha256": hashes,
        }
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        newest = sorted((run_dir / "samples").glob("step_*.png"))
        print(f"\ntrained {steps} steps in {wall:.0f} s ({summary['images_per_s']:.2f} images/s)")
        print(f"  samples:     {newest[-1] if newest else '(none: sample_every is off)'}")
        print(f"  checkpoint:  {final}")
        print(f"  config:      {run_dir / CONFIG_FILE}")
        print(f"  metrics:     {run_dir / 'metrics.jsonl'}")
        print(f"  TensorBoard: tensorboard --logdir {run_dir / 'tb'}")
    accelerator.end_training()
    return final


# -------------------------------------------------------------------------------------------- helpers
def _note_idle_cores(num_processes: int) -> None:
    """Say so when a CPU run leaves cores idle: `accelerate launch` on a machine without GPUs gives each
    process OMP_NUM_THREADS=1 unless told otherwise, which halves the quickstart's speed on 2 cores."""
    threads, cores = torch.get_num_threads(), os.cpu_count() or 1
    if threads * num_processes < cores:
        print(f"note: training on CPU with {threads} thread(s) x {num_processes} process(es) on {cores} "
              f"cores (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); to use them all, pass "
              f"`accelerate launch --num_cpu_threads_per_process {cores // num_processes}` or run "
              "`python experiments/run.py ...`")


def _check_settings(mixed_precision: str, grad_accum: int, d_steps: int, batch_size: int,
                    ema_decay: float | None, num_samples: int, keep_last: int | None) -> None:
    if mixed_precision is not None and mixed_precision not in MIXED_PRECISION:
        choices = ", ".join(MIXED_PRECISION)
        raise ValueError(f"train.mixed_precision = {mixed_precision!r}; choose one of {choices}")
    for name, value in (("grad_accum", grad_accum), ("D_steps_per_G", d_steps), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"train.{name} must be >= 1, got {value}")
    if ema_decay is not None and not 0 < ema_decay < 1:
        raise ValueError(f"train.ema_decay must be in (0, 1) (e.g. 0.999) or None, got {ema_decay}")
    if num_samples < 1:
        raise ValueError(f"train.num_samples must be >= 1, got {num_samples}")
    if keep_last is not None and keep_last < 1:
        raise ValueError(f"train.keep_last must be >= 1 or None (keep all), got {keep_last}")


def _to_device(batch: dict, spec: DataSpec, device: torch.device) -> tuple[Tensor, Tensor]:
    """A loader batch -> (seg one-hot (+ edges), real image) on the device."""
    label = batch["label"].to(device, non_blocking=True)
    instance = batch.get("instance")
    seg = encode_labels(
        label, spec.label_nc, contain_dontcare_label=spec.contain_dontcare_label,
        instance=instance.to(device, non_blocking=True) if instance is not None else None,
        instance_edges=spec.instance_edges, source=f"batch of {batch.get('path', ['?'])[0]}",
    )
    return seg, batch["image"].to(device, non_blocking=True)


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


@torch.no_grad()
def _ema_update(ema: nn.Module, net: nn.Module, decay: float) -> None:
    ema_params, params = list(ema.parameters()), list(net.parameters())
    torch._foreach_lerp_(ema_params, [p.detach() for p in params], 1 - decay)
    for b_ema, b in zip(ema.buffers(), net.buffers(), strict=True):  # BN statistics, spectral-norm vectors
        b_ema.copy_(b)


def _check_finite(accelerator: Any, losses: dict[str, Tensor], step: int, epoch: int, run_dir: Path) -> dict:
    """Mean of each loss over processes; stop every process when any value is NaN or infinite."""
    names = list(losses)
    stacked = torch.stack([losses[k].reshape(()) for k in names])
    stacked = accelerator.reduce(stacked, "mean") if accelerator.num_processes > 1 else stacked
    values = dict(zip(names, stacked.tolist(), strict=True))
    bad = [f"{k} = {v}" for k, v in values.items() if not torch.isfinite(torch.tensor(v))]
    if bad:
        last = latest_checkpoint(run_dir)
        keep = f"the last good checkpoint is {last}" if last else "no checkpoint had been written yet"
        raise NonFiniteLossError(
            f"non-finite loss at step {step} (epoch {epoch}): {', '.join(bad)} (G step first, then D step); "
            f"nothing from this step was saved and {keep}. Lower train.lr, use mixed_precision 'bf16' or "
            "'no', or check the data; --resume restarts from that checkpoint"
        )
    return values


def _fixed_samples(data: Any, n: int, seed: int) -> dict[str, Tensor]:
    """The first `n` items, loaded as in epoch 0 without touching the training RNG."""
    from torch.utils.data import default_collate

    from condgen.train.data import SeededItems, _mix

    items = SeededItems(data)
    n = min(n, len(data))
    return default_collate([items[(i, _mix(seed, -1, i))] for i in range(n)])


@torch.no_grad()
def _write_samples(accelerator: Any, run_dir: Path, step: int, G: nn.Module, E: nn.Module | None,
                   fixed: dict, spec: DataSpec, seed: int, palette: Any = None) -> None:
    """Grid of label | real | fake for the fixed items, G in eval mode, seeded: the training RNG is kept."""
    device = accelerator.device
    seg, real = _to_device(fixed, spec, device)
    was_training = G.training
    G.eval()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        if E is not None:
            e_training = E.training
            E.eval()
            z, _ = E(real)  # the posterior mean: the real image's style, no sampling noise
            E.train(e_training)
            fake = G(seg, z)
        else:
            fake = G(seg)
    G.train(was_training)
    grid = sample_grid(colorize(fixed["label"], palette), real, fake)
    save_png(grid, run_dir / "samples" / f"step_{step:06d}.png")
    _tensorboard(accelerator, lambda w: w.add_image("samples/label_real_fake", grid, step))


def _tensorboard(accelerator: Any, fn: Any) -> None:
    try:
        fn(accelerator.get_tracker("tensorboard", unwrap=True))
    except (ValueError, AttributeError):  # tracker not started (init failed or tensorboard missing)
        pass


def _as_markdown(config: str) -> str:
    return "\n".join("    " + line for line in config.splitlines())


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True)


def _state(step: int, epoch: int, accelerator: Any, batch_size: int, grad_accum: int, seed: int,
           gan: GAN, spec: DataSpec) -> dict[str, Any]:
    names = enumerate(gan.named())
    files = {name: f"model_{i}.safetensors" if i else "model.safetensors" for i, name in names}
    layout = {"num_processes": accelerator.num_processes, "batch_size": batch_size, "grad_accum": grad_accum}
    precision = {"mixed_precision": accelerator.mixed_precision}
    return {"step": step, "epoch": epoch, **layout, **precision, "seed": seed, "models": files,
            "spec": dataclasses.asdict(spec)}


def _warn_layout_change(state: dict, num_processes: int, batch_size: int, grad_accum: int,
                        main: bool) -> None:
    now = {"num_processes": num_processes, "batch_size": batch_size, "grad_accum": grad_accum}
    changed = [f"{k} {state.get(k)} -> {v}" for k, v in now.items() if state.get(k) != v]
    if changed and main:
        log.warning("resuming with a different batch layout (%s): training continues, but the data order and "
                    "random streams no longer match an uninterrupted run", ", ".join(changed))


def _check_replicas_identical(accelerator: Any, nets: list[nn.Module]) -> list[str]:
    """SHA-256 of every process's parameters; raises if they differ (they must, after DDP all-reduces)."""
    h = hashlib.sha256()
    for net in nets:
        for name, p in accelerator.unwrap_model(net).named_parameters():
            h.update(name.encode())
            h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    digest = h.hexdigest()
    if accelerator.num_processes == 1:
        return [digest]
    from accelerate.utils import gather_object

    digests = gather_object([digest])
    if len(set(digests)) != 1:
        raise RuntimeError(f"parameters differ between processes after training: {digests}")
    return digests

