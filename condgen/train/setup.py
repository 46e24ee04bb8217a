"""`build_run`: everything a training run needs, built in one place (the loop, benchmarks and tests share it).

Order, as the official trainer and DDP require: settings checked; Accelerator; seed; data and its spec;
networks (`build_gan`, identical initialisation on every process); SyncBatchNorm on CUDA with > 1 process;
speed switches; objective; optimisers (TTUR); Accelerate `prepare`; EMA copy; torch.compile wrappers.
Nothing here writes to the run directory.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gin
import torch
from torch import Tensor, nn

from condgen.data.errors import DataError
from condgen.data.spec import DataSpec
from condgen.objectives.base import Objective
from condgen.objectives.pix2pixhd import Pix2PixHDObjective
from condgen.train import schedule
from condgen.train.build import GAN, build_gan, convert_sync_batchnorm, paper_names
from condgen.train.data import batches_per_epoch
from condgen.train.speed import SpeedOptions
from condgen.train.state import install_portable_hooks

log = logging.getLogger("condgen.train")
MIXED_PRECISION = ("no", "bf16", "fp16")


class SettingsError(ValueError):
    """A training setting (a gin binding) has a value that cannot work; the message names it and the fix."""


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """The values of `train`'s arguments (documented there), as one record.

    The one statement of their types and defaults: `train`'s signature is made from these fields
    (`settings_signature`), so that gin's `train.x = ...` bindings, the operative `config.gin` and this record
    can never disagree on a default.
    """

    dataset: Any
    objective: Any = Pix2PixHDObjective
    batch_size: int = 1
    num_workers: int = 0
    shuffle: bool = True
    niter: int = 50
    niter_decay: int = 0
    max_steps: int | None = None
    lr: float = 2e-4
    ttur: bool = True
    betas: tuple[float, float] | None = None
    D_steps_per_G: int = 1
    mixed_precision: str | None = None
    grad_accum: int = 1
    ema_decay: float | None = None
    ema_bn_batches: int = 0
    seed: int = 0
    save_every: int | None = 5000
    keep_last: int | None = 3
    sample_every: int | None = 1000
    sample_at: tuple[int, ...] = ()
    num_samples: int = 8
    log_every: int = 50
    progress: bool = True


def settings_signature(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give `fn(..., **settings)` a signature whose keyword-only parameters are `TrainSettings`'s fields, with
    their annotations and defaults (gin, `inspect` and the binding checks read this signature)."""
    sig = inspect.signature(fn)
    own = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    # a field without a default is gin.REQUIRED: gin then names the missing `train.dataset` binding
    fields = [
        inspect.Parameter(
            f.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=gin.REQUIRED if f.default is dataclasses.MISSING else f.default,
            annotation=f.type,
        )
        for f in dataclasses.fields(TrainSettings)
    ]
    fn.__signature__ = sig.replace(parameters=own + fields)  # type: ignore[attr-defined]
    return fn


@dataclasses.dataclass
class StepContext:
    """What one training step needs: the prepared networks and optimisers (by name) and the objective."""

    accelerator: Any
    nets: dict[str, nn.Module]  # 'G', 'D', 'E': those the objective's run builds
    optimizers: dict[str, torch.optim.Optimizer]  # one per `objective.updates()` entry, by its name
    objective: Objective

    @property
    def G(self) -> nn.Module:
        return self.nets["G"]

    @property
    def D(self) -> nn.Module | None:
        return self.nets.get("D")

    @property
    def E(self) -> nn.Module | None:
        return self.nets.get("E")

    @property
    def opt_G(self) -> torch.optim.Optimizer:
        return self.optimizers["G"]

    @property
    def opt_D(self) -> torch.optim.Optimizer | None:
        return self.optimizers.get("D")


@dataclasses.dataclass
class Run:
    """A built run: `step` holds what the GAN step uses; the rest is for the loop around it."""

    settings: TrainSettings
    accelerator: Any
    data: Any
    spec: DataSpec
    gan: GAN  # the unwrapped networks, as built
    step: StepContext  # prepared (DDP) and compiled wrappers
    ema: nn.Module | None
    speed: SpeedOptions
    steps: int  # total steps of the run
    per_epoch: int  # steps per epoch
    lr_G: float
    lr_D: float

    @property
    def lrs(self) -> dict[str, float]:
        """The base learning rate of each optimiser, by update name."""
        return {"G": self.lr_G, "D": self.lr_D}

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def images_per_step(self) -> int:
        s = self.settings
        return s.batch_size * self.accelerator.num_processes * s.grad_accum

    def extra(self) -> dict[str, nn.Module] | None:
        """Modules saved beside Accelerate's state (the EMA generator)."""
        return {"ema": self.ema} if self.ema is not None else None

    def sample_networks(self) -> tuple[nn.Module, nn.Module | None]:
        """The generator samples come from (the EMA one when kept) and the encoder."""
        unwrap = self.accelerator.unwrap_model
        G = self.ema if self.ema is not None else unwrap(self.step.G)
        return G, unwrap(self.step.E) if self.step.E is not None else None

    def to_device(self, batch: dict) -> tuple[Tensor, Tensor]:
        """A loader batch -> (seg one-hot (+ edges), real image) on the device, in the speed layout."""
        return self.speed.inputs(*to_device(batch, self.spec, self.device))


def build_run(settings: TrainSettings, *, accelerator: Any | None = None, run_dir: str | Path = ".") -> Run:
    """Build data, networks, objective, optimisers and wrappers for `settings`.

    `accelerator`: an existing one (benchmarks pass their own); by default an `Accelerator` with the
    settings' precision, logging TensorBoard under `run_dir`.
    """
    from accelerate.utils import set_seed

    s = settings
    check_settings(s)
    if accelerator is None:
        accelerator = make_accelerator(s, run_dir)
    if accelerator.device.type == "cpu":
        use_cpu_cores(accelerator.num_processes, accelerator.is_main_process)
    set_seed(s.seed)
    data = s.dataset()
    spec: DataSpec = data.spec
    try:  # shapes and sizes the settings ask for: say which binding to change, before any work
        gan = build_gan(spec)
        check_networks(gan, s.objective)
        per_epoch = batches_per_epoch(len(data), s.batch_size, accelerator.num_processes)
        steps = schedule.total_steps(
            niter=s.niter,
            niter_decay=s.niter_decay,
            batches_per_epoch=per_epoch,
            grad_accum=s.grad_accum,
            max_steps=s.max_steps,
        )
    except ValueError as e:  # gin re-raises through a proxy subclass, so test by kind, not by type
        if isinstance(e, DataError):
            raise
        raise SettingsError(plain_message(e)) from None
    lr_G, lr_D, betas = schedule.optimizer_settings(s.lr, ttur=s.ttur, betas=s.betas)
    ema = copy.deepcopy(gan.G).eval().requires_grad_(False) if s.ema_decay is not None else None
    speed = SpeedOptions()  # channels_last / compile / fused Adam / cuDNN autotuning, all off by default
    speed.configure_backends(accelerator.device)
    for net in gan.named().values():
        convert_sync_batchnorm(
            net, device_type=accelerator.device.type, num_processes=accelerator.num_processes
        )
        speed.to_memory_format(net)
    objective = s.objective().to(accelerator.device)
    if gan.E is not None and accelerator.is_main_process:
        warn_kld_batch(getattr(objective, "kld_loss", None), s.batch_size * s.grad_accum)
    built = gan.named()
    lrs = {"G": lr_G, "D": lr_D}
    optimizers = {}
    for update in objective.updates():  # one optimiser per update, over the networks it trains
        params = [p for name in update.networks if name in built for p in built[name].parameters()]
        optimizers[update.name] = speed.adam(params, lr=lrs.get(update.name, s.lr), betas=betas)
    nets = accelerator.prepare(*built.values())
    nets = nets if isinstance(nets, tuple) else (nets,)
    opts = accelerator.prepare(*optimizers.values())
    opts = opts if isinstance(opts, tuple) else (opts,)
    install_portable_hooks(accelerator)
    if ema is not None:
        ema.to(accelerator.device)
    compiled = {k: speed.compiled(v) for k, v in zip(built, nets, strict=True)}  # keys unchanged
    step = StepContext(accelerator, compiled, dict(zip(optimizers, opts, strict=True)), objective)
    return Run(s, accelerator, data, spec, gan, step, ema, speed, steps, per_epoch, lr_G, lr_D)


def check_networks(gan: GAN, objective: Any) -> None:
    """The networks built (gin `build_gan.*`) are those the objective trains (`Objective.networks`)."""
    wants = set(getattr(objective, "networks", ("G", "D")))
    name = getattr(objective, "__name__", type(objective).__name__)
    if "D" in wants and gan.D is None:
        raise SettingsError(f"{name} trains a discriminator, but build_gan.discriminator = None; bind "
                            "build_gan.discriminator = @SomeDiscriminator (or another train.objective)")
    if "D" not in wants and gan.D is not None:
        raise SettingsError(f"{name} trains no discriminator, but build_gan.discriminator = "
                            f"@{type(gan.D).__name__}; bind build_gan.discriminator = None")


def warn_kld_batch(kld: Any, per_process: int) -> None:
    """The summed KL's weight is set for the experiment's per-process batch (`KLDLoss.paper_batch`)."""
    paper = getattr(kld, "paper_batch", None)
    if kld is None or kld.reduction != "sum" or paper is None or paper == per_process:
        return
    log.warning(
        "the VAE's KL term is summed over the %d images per process and update (batch_size x grad_accum), "
        "as in the official code, so at lambda_kld it weighs %.3gx what it does in the paper's setting "
        "(%d per process). To keep the paper's weight whatever the batch: --gin_bindings "
        "\"KLDLoss.reduction = 'mean'\" 'KLDLoss.batch = %d'",
        per_process, per_process / paper, paper, paper,
    )


def make_accelerator(s: TrainSettings, run_dir: str | Path) -> Any:
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    # no gradient_accumulation_steps: Accelerate would divide every loss by it, the summed KL too; the loop
    # weighs each micro-batch's terms itself (`loop._per_update`)
    accelerator = Accelerator(
        mixed_precision=s.mixed_precision,
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
    return accelerator


def check_settings(s: TrainSettings) -> None:
    """Every `train.*` value checked for type and range; raises `SettingsError` naming the binding."""
    if s.mixed_precision is not None and s.mixed_precision not in MIXED_PRECISION:
        choices = ", ".join(repr(c) for c in MIXED_PRECISION)
        raise SettingsError(
            f"train.mixed_precision = {s.mixed_precision!r}; choose one of {choices} (or None: "
            "accelerate launch's --mixed_precision)"
        )
    ints = {
        "batch_size": 1,
        "grad_accum": 1,
        "D_steps_per_G": 1,
        "num_samples": 1,
        "niter": 0,
        "niter_decay": 0,
        "num_workers": 0,
        "seed": None,
        "log_every": 1,
    }
    optional_ints = {"max_steps": 1, "save_every": 1, "sample_every": 1, "keep_last": 1}
    for name, low in [*ints.items(), *optional_ints.items()]:
        value = getattr(s, name)
        if value is None and name in optional_ints:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(
                f"train.{name} = {value!r} is not a whole number; bind e.g. train.{name} = {max(low or 0, 1)}"
            )
        if low is not None and value < low:
            none = " or None" if name in optional_ints else ""
            macro = " (the BATCH_SIZE macro sets it)" if name == "batch_size" else ""
            raise SettingsError(f"train.{name} = {value} must be >= {low}{none}; change the binding{macro}")
    at = s.sample_at
    if not isinstance(at, (tuple, list)) or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                                                  for v in at):
        raise SettingsError(
            f"train.sample_at = {at!r} must be a tuple of step numbers >= 1, "
            "e.g. train.sample_at = (25, 50, 100)"
        )
    if isinstance(s.lr, bool) or not isinstance(s.lr, (int, float)) or not s.lr > 0:
        raise SettingsError(f"train.lr = {s.lr!r} must be a positive number, e.g. 2e-4 (the LR macro)")
    if s.betas is not None and (len(tuple(s.betas)) != 2 or not all(0 <= float(b) < 1 for b in s.betas)):
        raise SettingsError(
            f"train.betas = {s.betas!r} must be None or two numbers in [0, 1), e.g. (0.0, 0.9)"
        )
    if s.ema_decay is not None and not (isinstance(s.ema_decay, (int, float)) and 0 < s.ema_decay < 1):
        raise SettingsError(f"train.ema_decay = {s.ema_decay!r} must be in (0, 1) (e.g. 0.999) or None")


def plain_message(e: Exception) -> str:
    """An error message without gin's "In call to configurable 'x' (<function x at 0x...>)" lines."""
    return "\n".join(line for line in str(e).splitlines() if "In call to configurable" not in line).strip()


def use_cpu_cores(num_processes: int, main: bool = True) -> int:
    """Give each CPU process its share of the cores, unless the user chose a thread count.

    `accelerate launch` without GPUs hands every process OMP_NUM_THREADS=1 unless told otherwise, which
    would halve the quickstart's speed on 2 cores: a process launched that way with exactly 1 thread gets
    cores / processes threads instead. `CONDGEN_CPU_THREADS=N` (or `--num_cpu_threads_per_process N` with
    N > 1, or OMP_NUM_THREADS outside the launcher) is taken as the user's choice. Returns the thread count.
    """
    chosen, threads = os.environ.get("CONDGEN_CPU_THREADS"), torch.get_num_threads()
    if chosen:
        torch.set_num_threads(int(chosen))
    elif _launched_by_accelerate() and os.environ.get("OMP_NUM_THREADS") == "1" and threads == 1:
        share = max(1, (os.cpu_count() or 1) // num_processes)
        if share > 1:
            torch.set_num_threads(share)
            if main:
                print(
                    f"note: accelerate launch gave this CPU process 1 thread; using {share} "
                    f"({share} cores per process). Set CONDGEN_CPU_THREADS=N to choose."
                )
    if main:
        note_idle_cores(num_processes)
    return torch.get_num_threads()


def _launched_by_accelerate() -> bool:
    return "ACCELERATE_DYNAMO_BACKEND" in os.environ  # set for every process `accelerate launch` starts


def note_idle_cores(num_processes: int) -> None:
    """Say so when a CPU run leaves cores idle: `accelerate launch` on a machine without GPUs gives each
    process OMP_NUM_THREADS=1 unless told otherwise, which halves the quickstart's speed on 2 cores."""
    threads, cores = torch.get_num_threads(), os.cpu_count() or 1
    if threads * num_processes < cores:
        print(
            f"note: training on CPU with {threads} thread(s) x {num_processes} process(es) on {cores} "
            f"cores (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); to use them all, pass "
            f"`accelerate launch --num_cpu_threads_per_process {cores // num_processes}`, set "
            f"CONDGEN_CPU_THREADS={cores // num_processes} or run `python experiments/run.py ...`"
        )


def to_device(batch: dict, spec: DataSpec, device: torch.device) -> tuple[Tensor, Tensor]:
    """A loader batch -> (seg one-hot (+ edges), real image) on the device (`DataSpec.encode`, the one label
    route that inference uses too)."""
    instance = batch.get("instance")
    seg = spec.encode(
        batch["label"].to(device, non_blocking=True),
        instance.to(device, non_blocking=True) if instance is not None else None,
        source=f"batch of {batch.get('path', ['?'])[0]}",
    )
    return seg, batch["image"].to(device, non_blocking=True)


def checkpoint_state(run: Run, step: int, epoch: int) -> dict[str, Any]:
    """`state.json` of a checkpoint: progress, batch layout, precision, seed, model files, data spec."""
    s, acc = run.settings, run.accelerator
    names = enumerate(run.gan.named())
    files = {name: f"model_{i}.safetensors" if i else "model.safetensors" for i, name in names}
    return {
        "step": step,
        "epoch": epoch,
        "num_processes": acc.num_processes,
        "batch_size": s.batch_size,
        "grad_accum": s.grad_accum,
        "mixed_precision": acc.mixed_precision,
        "seed": s.seed,
        "models": files,
        "spec": dataclasses.asdict(run.spec),
        # what a user of the model needs and cannot rebuild from the networks: resolved once, here
        "dataset": dataset_record(run.data),
        "paper_names": dict(zip(("G", "D"), paper_names(run.gan), strict=True)),
    }


def dataset_record(data: Any) -> dict[str, Any]:
    """`state.json`'s `dataset`: the registry name of the training set's class and its class names."""
    return {"name": type(data).__name__, "classes": list(getattr(data, "CLASS_NAMES", ()) or ())}


def warn_layout_change(state: dict, run: Run) -> None:
    s = run.settings
    now = {
        "num_processes": run.accelerator.num_processes,
        "batch_size": s.batch_size,
        "grad_accum": s.grad_accum,
    }
    changed = [f"{k} {state.get(k)} -> {v}" for k, v in now.items() if state.get(k) != v]
    if changed and run.main:
        log.warning(
            "resuming with a different batch layout (%s): training continues, but the data order and "
            "random streams no longer match an uninterrupted run",
            ", ".join(changed),
        )


def replica_hashes(accelerator: Any, nets: list[nn.Module]) -> list[str]:
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
