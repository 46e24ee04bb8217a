"""The training step as the loop runs it, set up for measuring: one experiment, one set of speed switches.

`Setup` parses an experiment's gin file (`spade_coco.gin`, `ccfpse_coco.gin`) with size overrides, writes a
miniature COCO-Stuff folder (real JPEG/PNG decoding through the real loader), builds the networks, losses and
optimisers as `condgen.train.loop.train` does and runs its `generator_step` + `discriminator_step`.
`measure` returns images/s, peak memory and the time shares of data loading, G (+E), D, VGG and the
optimisers. VGG19 uses random weights (`VGGLoss.random_init`): the speed does not depend on them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.memory import MemoryMeter, saved_tensor_bytes
from benchmarks.report import sync

EXPERIMENTS = {"spade": "spade_coco.gin", "ccfpse": "ccfpse_coco.gin"}
_MINIATURES: dict[tuple[int, int], Path] = {}


@dataclasses.dataclass(frozen=True)
class Config:
    """One measured configuration.

    Args:
        model: 'spade' | 'ccfpse' (the COCO experiments, paper losses and discriminators).
        size: crop size (paper 256); ngf, ndf: widths (paper 64); batch: images per step.
        impl: conditional depthwise implementation ('reference' = the official unfold).
        checkpoint_heads: `CCResBlock.checkpoint_heads`.
        mixed_precision: 'no' | 'bf16' | 'fp16' (Accelerate autocast).
        speed: `SpeedOptions` field values (channels_last, compile, fused_adam, cudnn_benchmark, pin_memory).
        num_workers: DataLoader workers.
        extra: further gin bindings (e.g. smaller heads for smoke tests).
        label_sparse: the label-sparse switch for this configuration ('auto' | 'on' | 'off'), set around
            each of its steps (not through gin: interleaved configurations share one gin state).
    """

    model: str
    size: int = 256
    ngf: int = 64
    ndf: int = 64
    batch: int = 1
    impl: str = "lean"
    checkpoint_heads: bool = False
    mixed_precision: str = "no"
    speed: tuple[tuple[str, Any], ...] = ()
    num_workers: int = 0
    extra: tuple[str, ...] = ()
    label_sparse: str = "auto"

    def bindings(self, root: Path) -> list[str]:
        gen = "SPADEGenerator" if self.model == "spade" else "CCFPSEGenerator"
        disc = "MultiscalePatchDiscriminator" if self.model == "spade" else "FPSEDiscriminator"
        return [
            f"COCO_ROOT = '{root}'", f"CocoStuff.crop_size = {self.size}",
            f"CocoStuff.load_size = {self.size}", f"{gen}.ngf = {self.ngf}", f"{disc}.ndf = {self.ndf}",
            f"VAEEncoder.ngf = {self.ngf}",
            "VGGLoss.random_init = True", f"CCResBlock.impl = '{self.impl}'",
            f"CCResBlock.checkpoint_heads = {self.checkpoint_heads}", f"BATCH_SIZE = {self.batch}",
            *self.extra,
        ]


def miniature_coco(size: int, n: int = 16) -> Path:
    """A COCO-Stuff-layout folder of `n` synthetic items at `size` px (cached per process)."""
    if (size, n) not in _MINIATURES:
        from condgen.data.miniature import make_miniature

        root = Path(tempfile.mkdtemp(prefix="condgen_bench_"))
        _MINIATURES[size, n] = make_miniature("coco", root, n=n, size=size)
    return _MINIATURES[size, n]


class PlainAccelerator:
    """What the loop's step functions use of Accelerate, for one process and 'no' / 'bf16' precision.

    Accelerate's state is process-wide (one precision per process); these coexist, so the CPU benchmarks
    can keep every configuration alive and interleave their steps (a busy machine then slows all alike).
    """

    def __init__(self, mixed_precision: str, device: torch.device) -> None:
        if mixed_precision not in ("no", "bf16"):
            raise ValueError(f"PlainAccelerator: mixed_precision 'no' or 'bf16', got {mixed_precision!r}")
        self.device, self.mixed_precision = device, mixed_precision

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision == "bf16")

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        loss.backward(**kwargs)

    def no_sync(self, model: torch.nn.Module) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def unwrap_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return getattr(model, "_orig_mod", model)

    # what `build_run` uses besides: one process, modules moved to the device, no checkpoint hooks
    is_main_process, num_processes, process_index = True, 1, 0

    def prepare(self, *objs: Any) -> Any:
        moved = tuple(o.to(self.device) if isinstance(o, torch.nn.Module) else o for o in objs)
        return moved if len(moved) > 1 else moved[0]

    def register_save_state_pre_hook(self, hook: Any) -> None:
        pass

    def register_load_state_pre_hook(self, hook: Any) -> None:
        pass


class Setup:
    """Networks, losses, optimisers, loader and step context for one `Config`.

    On CUDA it uses Accelerate as the training loop does (one configuration at a time); on CPU a
    `PlainAccelerator`, so that several configurations can be alive at once.
    """

    def __init__(self, cfg: Config, device: torch.device) -> None:
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState, GradientState

        from condgen.cli.gin_setup import parse_gin
        from condgen.data.coco import CocoStuff
        from condgen.objectives import Pix2PixHDObjective
        from condgen.train.data import make_loader
        from condgen.train.setup import TrainSettings, build_run

        self.cfg, self.device = cfg, device
        root = miniature_coco(max(cfg.size, 64), n=max(16, 2 * cfg.batch))  # two batches per epoch at least
        speed = [f"SpeedOptions.{k} = {v!r}" for k, v in cfg.speed]
        parse_gin([EXPERIMENTS[cfg.model]], [*cfg.bindings(root), *speed])
        if device.type == "cuda":
            AcceleratorState._reset_state(True)  # one Accelerator per configuration in this process
            GradientState._reset_state()
            accelerator = Accelerator(mixed_precision=cfg.mixed_precision)
        else:
            accelerator = PlainAccelerator(cfg.mixed_precision, device)
        settings = TrainSettings(dataset=CocoStuff, objective=Pix2PixHDObjective, batch_size=cfg.batch,
                                 num_workers=cfg.num_workers, mixed_precision=cfg.mixed_precision)
        self.run = run = build_run(settings, accelerator=accelerator)  # exactly what `train` builds
        self.accelerator, self.speed, self.spec, self.ctx = accelerator, run.speed, run.spec, run.step
        self.nets = {k: accelerator.unwrap_model(getattr(run.step, k)) for k in run.gan.named()}
        self.opt_G, self.opt_D = run.step.opt_G, run.step.opt_D
        self.objective = run.step.objective
        self.vgg = self.objective.vgg_loss
        pin = run.speed.pin(device)
        loader = make_loader(run.data, cfg.batch, num_workers=cfg.num_workers, pin_memory=pin)
        self._batches = iter(loader)
        self._to_device = run.to_device

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._to_device(next(self._batches))

    def step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        from condgen.train.loop import discriminator_step, generator_step

        with self.switch():
            return generator_step(self.ctx, [batch]) | discriminator_step(self.ctx, [batch])

    def switch(self) -> contextlib.AbstractContextManager:
        from condgen.ops.label_conv import use_label_sparse

        return use_label_sparse(self.cfg.label_sparse)

    def parameters(self) -> list[torch.Tensor]:
        """Everything that is not activation memory: weights, buffers, optimiser state."""
        out = [t for net in [*self.nets.values(), self.vgg] for t in (*net.parameters(), *net.buffers())]
        for opt in (self.opt_G, self.opt_D):
            out += [v for state in opt.state.values() for v in state.values() if torch.is_tensor(v)]
        return out


def _timed(fn) -> float:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def measure(cfg: Config, device: torch.device, *, steps: int = 3, warmup: int = 1,
            shares: bool = True, memory: bool = True) -> dict[str, float]:
    """images/s of full steps (data included), peak memory, and where the time goes."""
    return measure_many([cfg], device, steps=steps, warmup=warmup, shares=shares, memory=memory)[0]


def measure_many(cfgs: list[Config], device: torch.device, *, steps: int = 3, warmup: int = 1,
                 shares: bool = True, memory: bool = True) -> list[dict[str, float]]:
    """`measure` for several configurations. On CPU they are all built first and their steps interleaved
    (round robin, medians), so that a machine whose load changes slows every configuration alike; on CUDA,
    where the device is not shared and memory is the limit, one after the other."""
    if device.type == "cuda" and len(cfgs) > 1:
        return [measure_many([c], device, steps=steps, warmup=warmup, shares=shares, memory=memory)[0]
                for c in cfgs]
    setups = [Setup(c, device) for c in cfgs]
    times: list[dict[str, list[float]]] = [{"step": [], "data": []} for _ in cfgs]
    batches = [None] * len(cfgs)
    for i in range(warmup + steps):
        for k, s in enumerate(setups):
            t0 = time.perf_counter()
            batches[k] = batch = s.next_batch()
            t1 = time.perf_counter()
            t_step = _timed(lambda s=s, batch=batch: s.step(batch))
            if i >= warmup:
                times[k]["data"].append(t1 - t0)
                times[k]["step"].append(t_step)
    results = []
    for cfg, s, t, batch in zip(cfgs, setups, times, batches, strict=True):
        r = {"step_s": statistics.median(t["step"]), "data_s": statistics.median(t["data"]),
             "step_times": list(t["step"])}
        r["images_per_s"] = cfg.batch / (r["step_s"] + r["data_s"])
        if memory:
            r |= _memory(s, batch, device)
        if shares:
            r |= _shares(s, batch)
        results.append(r)
    return results


def _memory(s: Setup, batch: Any, device: torch.device) -> dict[str, float]:
    """Peak bytes of one more step: the allocator's on CUDA; live tensors (weights excluded) on CPU."""
    from condgen.train.loop import discriminator_step, generator_step

    if device.type == "cuda":
        sync()
        torch.cuda.reset_peak_memory_stats()
        s.step(batch)
        sync()
        return {"peak_gib": torch.cuda.max_memory_allocated() / 2**30, "g_saved_gib": float("nan")}
    if s.speed.compile:  # a dispatch mode would force recompilation; not measured
        return {"peak_gib": float("nan"), "g_saved_gib": float("nan")}
    keep = s.parameters() + list(batch)
    with s.switch(), MemoryMeter(ignore=keep) as meter:
        _, g_saved = saved_tensor_bytes(lambda: generator_step(s.ctx, [batch]), exclude=keep)
        discriminator_step(s.ctx, [batch])
    return {"peak_gib": meter.peak / 2**30, "g_saved_gib": g_saved / 2**30}


def _shares(s: Setup, batch: Any, repeat: int = 2) -> dict[str, float]:
    """Seconds per step of each part, measured in isolation on the same batch (medians of `repeat`)."""
    from condgen.networks.vae_encoder import reparameterize

    seg, real = batch
    ctx, autocast = s.ctx, s.accelerator.autocast
    G, D, E = ctx.G, ctx.D, ctx.E

    def generate(grad: bool) -> torch.Tensor:
        with torch.set_grad_enabled(grad), autocast():
            if E is None:
                return G(seg)
            return G(seg, reparameterize(*E(real)))

    def g_part() -> None:  # G step: forward + backward; D step: forward without graph
        generate(True).float().mean().backward()
        generate(False)

    fake = generate(False).detach()

    def d_part() -> None:  # G step: D on [fake; real] with input gradients; D step: parameter gradients
        for f in (fake.clone().requires_grad_(), fake):
            with autocast():
                out = D(torch.cat([f, real]), torch.cat([seg, seg]))
            sum(t.float().mean() for t in _flatten(out)).backward()

    def vgg_part() -> None:
        with autocast():
            loss = s.vgg(fake.clone().requires_grad_(), real)
        loss.backward()

    def opt_part() -> None:
        ctx.opt_G.step()
        ctx.opt_D.step()

    parts = {"G": g_part, "D": d_part, "VGG": vgg_part, "optim": opt_part}
    out = {}
    for name, fn in parts.items():
        fn = lambda fn=fn: _switched(s, fn)  # noqa: E731
        fn()  # warm-up (and compilation of new shapes)
        out[f"{name}_s"] = statistics.median(_timed(fn) for _ in range(repeat))
    for opt in (ctx.opt_G, ctx.opt_D):
        opt.zero_grad(set_to_none=True)
    return out


def _switched(s: Setup, fn) -> None:
    with s.switch():
        fn()


def _flatten(obj: Any) -> list[torch.Tensor]:
    if torch.is_tensor(obj):
        return [obj]
    return [t for o in obj for t in _flatten(o)]
