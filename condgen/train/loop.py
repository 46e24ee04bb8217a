"""The GAN training loop with Accelerate (SPADE Sec. 4 / appendix A; CC-FPSE Sec. 3.3, Sec. 4).

Per step, as the official trainer: a G step, then a D step on the same batch; what each step's losses are
is the objective's business (`condgen/objectives/`; `Pix2PixHDObjective` by default), this file only runs
them: zero_grad, micro-batches, no_sync, autocast, backward, step, EMA. `build_run` (`setup.py`) builds
everything beforehand; `report.py` writes samples, metrics and the summary.
Differences from the official code: G, D (and E) are separate Accelerate-prepared modules, so DDP never sees
a module without gradients (D's forward in the G step runs under `no_sync` and only G/E parameters receive
gradients); gradient accumulation sums `grad_accum` micro-batches into one G update, then one D update;
checkpoints are atomic Accelerate states; data order is a function of the seed.
Mixed precision: 'bf16' needs no loss scaling (recommended on GPUs that have it); 'fp16' uses Accelerate's
one dynamic GradScaler for both optimisers, updated after each of their steps: an overflow in either halves
the common scale and skips only that optimiser's step (its weights stay as they were). Skipped steps are
normal early in fp16 training; the NaN guard watches the losses, not the scaled gradients.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from pathlib import Path
from typing import Any

import gin
import torch
from torch import Tensor, nn

from condgen.data.errors import DataError
from condgen.objectives.base import Update, check_declared, total
from condgen.rundir import (
    CONFIG_FILE,
    LOCK_FILE,
    MARKER_FILE,
    METRICS_FILE,
    RunDirLock,
    check_run_dir,
    checkpoint_dirs,
    latest_checkpoint,
    mark_run_dir,
    read_state,
    remove_entries,
)
from condgen.train import schedule
from condgen.train.data import make_loader
from condgen.train.guard import StopSignals, TrainingInterrupted, stop_with_launcher
from condgen.train.report import (
    MetricsLog,
    fixed_samples,
    log_step,
    progress_bar,
    start_trackers,
    write_samples,
    write_summary,
)
from condgen.train.setup import (
    StepContext,
    TrainSettings,
    build_run,
    check_settings,
    checkpoint_state,
    replica_hashes,
    settings_signature,
    warn_layout_change,
)
from condgen.train.state import (
    CheckpointError,
    load_checkpoint,
    nonfinite_tensors,
    recover_checkpoints,
    resumable_checkpoint,
    save_checkpoint,
)


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stopped before saving anything from that step."""


# ---------------------------------------------------------------------------------------------- one update
def update_step(s: StepContext, update: Update, batches: list[tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
    """One optimiser update from the micro-batches: the update's networks get gradients, the others are
    only read (their DDP all-reduce skipped); the objective's loss terms are summed and backpropagated."""
    opt = s.optimizers[update.name]
    params = [p for group in opt.param_groups for p in group["params"] if p.requires_grad]
    trained = [s.nets[n] for n in update.networks if n in s.nets]
    read = [net for n, net in s.nets.items() if n not in update.networks]
    opt.zero_grad(set_to_none=True)
    totals: dict[str, Tensor] = {}
    for i, (seg, real) in enumerate(batches):
        with _sync_on_last(s, i, len(batches), *trained), _no_sync(s, read), s.accelerator.autocast():
            losses = _per_update(s, update.losses(s.nets, seg, real), len(batches))
        s.accelerator.backward(total(losses), inputs=params)
        _add(totals, losses)
    opt.step()
    return totals


def _update(s: StepContext, name: str) -> Update:
    return next(u for u in s.objective.updates() if u.name == name)


def generator_step(s: StepContext, batches: list[tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
    """A GAN objective's G (+E) update (benchmarks and tests call it by name); D is only read."""
    return update_step(s, _update(s, "G"), batches)


def discriminator_step(s: StepContext, batches: list[tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
    """A GAN objective's D update; the objective generates the fake with G (and E) under no_grad."""
    return update_step(s, _update(s, "D"), batches)


# ------------------------------------------------------------------------------------------------ the run
@gin.configurable(denylist=["run_dir", "resume", "new_rng"])
@settings_signature  # the settings' names, types and defaults: `TrainSettings`'s fields
def train(
    run_dir: str | Path,
    *,
    resume: bool = False,
    new_rng: bool = False,
    **settings: Any,
) -> Path:
    """Train the GAN that `build_gan` describes on `dataset`; returns the final checkpoint folder.

    Args:
        run_dir: where config, metrics, samples, TensorBoard logs and checkpoints go (`condgen.train`).
        resume: continue from the latest checkpoint in `run_dir` (a fresh start when there is none); a
            truncated or damaged checkpoint is passed over, with a warning, for the newest complete one.
        new_rng: on resume, accept a checkpoint without its RNG file (a fresh random stream).
        dataset: a dataset class (`@SyntheticLandscapes`, `@CocoStuff`, ...), called without arguments;
            items are dicts with `label`, `image` and optionally `instance`, and it has a `.spec`.
        objective: the objective class (`@Pix2PixHDObjective`: SPADE's / CC-FPSE's losses, whose weights
            are its own bindings, e.g. `Pix2PixHDObjective.lambda_vgg = 0.0`).
        batch_size: items per process per micro-batch (the paper: 32 = 8 GPUs x 4).
        num_workers: DataLoader worker processes (0 = load in the training process; the batches and the
            result do not depend on it).
        niter, niter_decay: epochs at the base rate, then epochs of linear decay (official defaults 50, 0).
        max_steps: stop after this many steps instead (tiny runs and tests); the LR schedule still
            follows the epochs.
        lr, ttur, betas: base rate; TTUR gives G lr/2 and D 2 lr with betas (0, 0.9); `ttur=False` is the
            official `--no_TTUR` (both lr, betas (0.5, 0.999)); `betas` overrides.
        D_steps_per_G: a G step runs every this many steps, a D step every step; counted over the run
            (the official trainer counts within each epoch: the same for 1, the papers' value).
        mixed_precision: 'no' | 'bf16' | 'fp16' (scaler policy: module docstring); None takes
            `accelerate launch --mixed_precision` (default 'no').
        grad_accum: micro-batches per update (an update = one G step and one D step on all of them). The
            losses and gradients equal those of one grad_accum x larger batch (mean terms averaged, the
            VAE's summed KL summed over the micro-batches), except what is per forward pass: BatchNorm
            statistics (param-free 'batch'/'syncbatch' norms normalise each micro-batch on its own) and
            spectral-norm power iterations (one per micro-batch, so grad_accum per update).
        ema_decay: keep an exponential moving average of G with this decay (e.g. 0.999); samples then use it.
        ema_bn_batches: before every sample grid and checkpoint, re-estimate the EMA generator's BatchNorm
            statistics on this many training batches (OASIS: 51; `condgen.train.ema`); 0 keeps G's.
        seed: seeds initialisation, data order, augmentation and noise.
        save_every, keep_last: checkpoint every so many steps (and at the end); keep the newest K.
        sample_every, num_samples: write a label | real | fake grid of the first items every so many steps.
        sample_at: also write the grid after these steps (early pictures: the quickstart's (25, 50, 100)).
        log_every: steps between metrics records (JSONL + TensorBoard) and progress-bar updates.
        progress: show the progress bar (main process only).
    Speed switches (channels-last, torch.compile, fused Adam, cuDNN autotuning) are `SpeedOptions.*`
    bindings (`condgen/train/speed.py`); they leave the results of the step unchanged within tolerance.

    The run directory (docs/training.md, "Run directories and signals"): a file or a foreign folder raises
    `RunDirError`; the main process marks and locks it (a second trainer gets `RunDirError`); an error before
    the first trained step (and the first checkpoint) removes what this call created; a `DataError` after it
    saves a checkpoint of the steps trained (one process); SIGINT / SIGTERM save the current step and raise
    `TrainingInterrupted`.
    """
    run_dir = Path(run_dir)
    settings = TrainSettings(**settings)
    check_settings(settings)  # before anything touches the disk
    check_run_dir(run_dir)
    if not resume and checkpoint_dirs(run_dir):
        raise FileExistsError(
            f"{run_dir} already holds checkpoints (latest {latest_checkpoint(run_dir).name}); pass --resume "
            "to continue that run, or choose a new --run_dir"
        )
    stop_with_launcher()
    with StopSignals() as signals:
        claim = _Claim(run_dir) if _launch_rank() == 0 else None  # only the main process locks
        attempt = _Attempt()
        try:
            return _train(run_dir, resume, new_rng, settings, signals, attempt)
        except BaseException as e:
            early = attempt.trained == 0 and not checkpoint_dirs(run_dir)
            if claim is not None and not isinstance(e, NonFiniteLossError) and early:
                claim.undo()  # an early failure leaves nothing of this run behind; trained steps are kept
            raise
        finally:
            if claim is not None:
                claim.release()


class _Attempt:
    """What this call has done so far: steps trained (a failure after one keeps the run directory), and the
    batch iterator, whose worker processes a failure stops (forked, they hold the run directory's lock)."""

    trained = 0
    batches: Any = None


class _Claim:
    """The main process's hold on the run directory: the lock, and what it found there (to undo a failure)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir, self.created = run_dir, not run_dir.exists()
        run_dir.mkdir(parents=True, exist_ok=True)
        new = {name for name in (MARKER_FILE, LOCK_FILE) if not (run_dir / name).exists()}
        mark_run_dir(run_dir)  # first: other processes of the run must never see an unmarked non-empty folder
        self.lock = RunDirLock(run_dir).acquire()  # raises RunDirError naming the pid holding it
        self.before = {p.name for p in run_dir.iterdir()} - new
        recover_checkpoints(run_dir)  # .step_<N>.old copies a killed save left

    def undo(self) -> None:
        """Remove what this run created (never what was there before), the folder too if it made it."""
        remove_entries(self.run_dir, keep=self.before | {LOCK_FILE})
        self.lock.release(remove=LOCK_FILE not in self.before)
        if self.created:
            with contextlib.suppress(OSError):
                self.run_dir.rmdir()

    def release(self) -> None:
        self.lock.release()


def _launch_rank() -> int:
    """This process's global rank as the launchers set it (before Accelerate starts); 0 without one."""
    for name in ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK"):
        if name in os.environ:
            return int(os.environ[name])
    return 0


def _train(run_dir: Path, resume: bool, new_rng: bool, settings: TrainSettings, signals: StopSignals,
           attempt: _Attempt) -> Path:
    run = build_run(settings, run_dir=run_dir)
    s, acc = run.settings, run.accelerator
    acc.wait_for_everyone()  # the main process has recovered leftovers of a killed save
    ckpt = None
    if resume:
        ckpt, skipped = resumable_checkpoint(run_dir)
        if ckpt is None and skipped:
            raise CheckpointError(f"--resume: no complete checkpoint in {run_dir} ({'; '.join(skipped)})")
        if skipped and run.main:
            warnings.warn(f"--resume passes over damaged checkpoints ({'; '.join(skipped)}) and continues "
                          f"from {ckpt}, the newest complete one", stacklevel=1)
    if resume and ckpt is None and run.main:
        print(f"--resume: no checkpoint in {run_dir} yet, starting a new run")

    # the operative config is complete now that everything has been built
    config = gin.operative_config_str()
    if run.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG_FILE).write_text(config)
    start = 0
    if ckpt is not None:
        state = load_checkpoint(acc, ckpt, extra=run.extra(), new_rng=new_rng)
        start = int(state["step"])
        warn_layout_change(state, run)
        if run.main:
            print(f"resumed from {ckpt} at step {start}")
            if start >= run.steps:
                print(f"the run already has {start} >= {run.steps} steps: nothing to train "
                      "(see train.max_steps)")
    else:
        from accelerate.utils import set_seed

        set_seed(s.seed, device_specific=True)  # per-process noise from here on
    fixed = fixed_samples(run.data, s.num_samples, s.seed)
    start_trackers(run, start, config, run_dir)
    try:
        return _steps(run, run_dir, start, ckpt, config, fixed, signals, attempt)
    except BaseException:
        # close the TensorBoard writer first: its thread must not write into a folder an early failure removes
        with contextlib.suppress(Exception):
            acc.end_training()
        shutdown = getattr(attempt.batches, "_shutdown_workers", None)  # torch's multi-process iterator
        if shutdown is not None:
            with contextlib.suppress(Exception):
                shutdown()
        raise


def _steps(run: Any, run_dir: Path, start: int, ckpt: Path | None, config: str, fixed: Any,
           signals: StopSignals, attempt: _Attempt) -> Path:
    """The training steps from `start` on, the final save and the summary; returns the final checkpoint."""
    s, acc = run.settings, run.accelerator
    metrics = MetricsLog(run_dir / METRICS_FILE, enabled=run.main)
    metrics.truncate_after(start)  # a new start drops records a killed earlier attempt left
    loader = make_loader(
        run.data, s.batch_size, num_processes=acc.num_processes, process_index=acc.process_index, seed=s.seed,
        start=start * s.grad_accum, num_workers=s.num_workers, shuffle=s.shuffle,
        pin_memory=run.speed.pin(run.device),
    )
    batches = attempt.batches = iter(loader)

    def save(step: int, epoch: int) -> Path:
        _check_finite_state(run, step, run_dir)  # only a finite state is written, and later recommended
        return save_checkpoint(acc, run_dir, checkpoint_state(run, step, epoch), config=config,
                               keep_last=s.keep_last, extra=run.extra())

    bar = progress_bar(run.steps, start, enabled=run.main and s.progress)
    updates = run.step.objective.updates()
    t_run, t_log, last_logged = time.perf_counter(), time.perf_counter(), start
    final, stopped = ckpt, None
    signals.deferred = True  # from here on SIGINT / SIGTERM stop the run at the end of the step
    for step in range(start, run.steps):
        where = schedule.Progress(step, s.grad_accum, run.per_epoch)
        factor = schedule.lr_factor(where.epoch, s.niter, s.niter_decay)
        for name, opt in run.step.optimizers.items():
            _set_lr(opt, run.lrs[name] * factor)
        try:
            micro = [run.to_device(next(batches)) for _ in range(s.grad_accum)]
        except DataError as e:
            bar.close()
            raise _keep_work(e, run, step, start, final, save) from None
        losses: dict[str, Tensor] = {}
        for update in updates:  # the objective's updates in order (a GAN: G, then D on the same batch)
            if update.thinned and step % s.D_steps_per_G:
                continue
            losses |= update_step(run.step, update, micro)
            if run.ema is not None and "G" in update.networks:
                _ema_update(run.ema, acc.unwrap_model(run.step.G), s.ema_decay)
        check_declared(run.step.objective, losses)  # reports plot the declared terms: none may be missing
        values = _check_finite(acc, losses, step + 1, where.epoch, run_dir)
        attempt.trained += 1

        done = step + 1
        if schedule.is_due(done, s.log_every, run.steps):
            now = time.perf_counter()
            ips = (done - last_logged) * run.images_per_step / max(now - t_log, 1e-9)
            t_log, last_logged = now, done
            log_step(run, metrics, bar, done, where.epoch, factor, values, ips)
        bar.update(1)
        sample_due = schedule.is_due(done, s.sample_every, run.steps, tuple(s.sample_at)) and run.main
        save_due = schedule.is_due(done, s.save_every, run.steps)
        if (sample_due or save_due) and run.ema is not None and s.ema_bn_batches:
            _recalibrate_ema(run, done)
        if sample_due:
            write_samples(run, run_dir, done, fixed)
        if save_due:
            final = save(done, where.epoch)
        stopped = _stop_requested(acc, signals)
        if stopped:
            if not save_due:
                if run.ema is not None and s.ema_bn_batches:
                    _recalibrate_ema(run, done)
                final = save(done, where.epoch)
            break
    bar.close()
    if stopped:
        acc.end_training()
        raise TrainingInterrupted(stopped, done, final)
    if start < run.steps and (final is None or read_state(final)["step"] != run.steps):  # the end is saved
        if run.ema is not None and s.ema_bn_batches:
            _recalibrate_ema(run, run.steps)
        final = save(run.steps, schedule.Progress(run.steps, s.grad_accum, run.per_epoch).epoch)
    hashes = replica_hashes(acc, list(run.step.nets.values()))
    if run.main:
        write_summary(run, run_dir, steps=run.steps, start=start, final=final,
                      wall=time.perf_counter() - t_run, hashes=hashes, config_file=run_dir / CONFIG_FILE)
    acc.end_training()
    return final


# -------------------------------------------------------------------------------------------- helpers
def _keep_work(error: DataError, run: Any, step: int, start: int, final: Path | None, save: Any) -> DataError:
    """A bad file met before step `step + 1`: save steps start+1..step (as SIGTERM does) and say so.

    With several processes the others may not have met the file (they would wait for this one in the
    save), so only a one-process run saves here; the run directory is kept either way.
    """
    if step == start or run.accelerator.num_processes > 1:
        return error
    s = run.settings
    if final is None or read_state(final)["step"] != step:
        if run.ema is not None and s.ema_bn_batches:
            _recalibrate_ema(run, step)
        final = save(step, schedule.Progress(step - 1, s.grad_accum, run.per_epoch).epoch)
    return DataError(f"{error}. The {step - start} step(s) trained before it are kept: saved {final}; fix "
                     f"the file, then --resume continues from step {step}", error.path)


def _stop_requested(acc: Any, signals: StopSignals) -> int:
    """The signal that asked to stop (0: none); with several processes, any one's request stops them all."""
    flag = signals.requested or 0
    if acc.num_processes > 1:
        flag = int(acc.gather(torch.tensor([flag], device=acc.device)).max())
    return flag


def _sync_on_last(s: StepContext, i: int, n: int, *models: nn.Module | None) -> contextlib.ExitStack:
    """Skip DDP's gradient all-reduce on every micro-batch but the last (gradient accumulation)."""
    stack = contextlib.ExitStack()
    if i < n - 1:
        for m in models:
            if m is not None:
                stack.enter_context(s.accelerator.no_sync(m))
    return stack


def _no_sync(s: StepContext, models: list[nn.Module]) -> contextlib.ExitStack:
    """No DDP gradient all-reduce for the networks an update only reads."""
    stack = contextlib.ExitStack()
    for m in models:
        stack.enter_context(s.accelerator.no_sync(m))
    return stack


def _per_update(s: StepContext, losses: dict[str, Tensor], n: int) -> dict[str, Tensor]:
    """One micro-batch's share of the update: means over the batch / n, batch sums (`batch_summed`) whole."""
    if n == 1:
        return losses
    return {k: v if k in s.objective.batch_summed else v / n for k, v in losses.items()}


def _add(totals: dict[str, Tensor], losses: dict[str, Tensor]) -> None:
    for k, v in losses.items():
        totals[k] = totals.get(k, 0) + v.detach().float()


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


@torch.no_grad()
def _ema_update(ema: nn.Module, net: nn.Module, decay: float) -> None:
    ema_params, params = list(ema.parameters()), list(net.parameters())
    torch._foreach_lerp_(ema_params, [p.detach() for p in params], 1 - decay)
    for b_ema, b in zip(ema.buffers(), net.buffers(), strict=True):  # BN statistics, spectral-norm vectors
        b_ema.copy_(b)


def _recalibrate_ema(run: Any, step: int) -> None:
    """OASIS's EMA BatchNorm re-estimation on training batches of their own stream: neither the training
    data order nor its random stream changes (a resumed run stays exact)."""
    from condgen.train.data import item_seed
    from condgen.train.ema import recalibrate_batchnorm

    s = run.settings
    loader = make_loader(run.data, s.batch_size, num_processes=run.accelerator.num_processes,
                         process_index=run.accelerator.process_index, seed=item_seed(s.seed, step, 51))
    device = run.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(item_seed(s.seed, step))
        batches = (run.to_device(b)[0] for b in loader)
        recalibrate_batchnorm(run.ema, batches, num_batches=s.ema_bn_batches)


def _check_finite(accelerator: Any, losses: dict[str, Tensor], step: int, epoch: int, run_dir: Path) -> dict:
    """Mean of each loss over processes; stop every process when any value is NaN or infinite."""
    names = list(losses)
    stacked = torch.stack([losses[k].reshape(()) for k in names])
    stacked = accelerator.reduce(stacked, "mean") if accelerator.num_processes > 1 else stacked
    values = dict(zip(names, stacked.tolist(), strict=True))
    bad = [f"{k} = {v}" for k, v in values.items() if not torch.isfinite(torch.tensor(v))]
    if bad:
        raise _non_finite(
            f"non-finite loss at step {step} (epoch {epoch}): {', '.join(bad)} (G step first, then D step); "
            "nothing from this step was saved", run_dir)
    return values


def _check_finite_state(run: Any, step: int, run_dir: Path) -> None:
    """Stop before saving a state whose parameters or buffers (BatchNorm statistics) hold NaN or inf."""
    bad = nonfinite_tensors({**run.step.nets, "ema": run.ema})
    if bad:
        more = f" and {len(bad) - 4} more" if len(bad) > 4 else ""
        raise _non_finite(
            f"the training state at step {step} is not finite ({', '.join(bad[:4])}{more}): it was not saved",
            run_dir)


def _non_finite(what: str, run_dir: Path) -> NonFiniteLossError:
    """`what` went wrong, then the last good checkpoint (finite: nothing else is saved) and what to try."""
    last = latest_checkpoint(run_dir)
    keep = f"the last good checkpoint is {last}" if last else "no checkpoint had been written yet"
    return NonFiniteLossError(
        f"{what} and {keep}. Lower train.lr, use mixed_precision 'bf16' or 'no', or check the data; "
        "--resume restarts from that checkpoint"
    )
