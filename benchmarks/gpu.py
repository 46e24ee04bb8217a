"""Every CUDA check and GPU benchmark in one command, for the first time a GPU is lent (one H100 / H200).

    python -m benchmarks.gpu [--out benchmarks/gpu_results] [--budget-s 480]
    python -m benchmarks.gpu --dry-run        # tiny sizes on CPU (tests/perf runs this): the script works

Checks (each passes or fails, with its numbers): the Triton conditional depthwise kernels against the unfold
reference (forward, both gradients, fp32); label-sparse convolutions against dense (`conv_labels`, forward
and weight gradients); a bf16 autocast training step against the fp32 one (losses and G's output within the
tolerance of tests/perf); SyncBatchNorm conversion of the generator on one process (a one-process group,
outputs against BatchNorm). Benchmarks (`benchmarks.harness`, the loop's own step): SPADE 256 px batch 32,
bf16 + channels_last + fused Adam + cuDNN benchmark against fp32 without options (images/s, peak memory);
CC-FPSE: the largest batch that fits (fp32 and fast); torch.compile on / off (SPADE); label-sparse on / off
(SPADE and CC-FPSE, fp32); the Triton op against 'lean' and the reference at the 256-px sizes.
Writes `<out>.json` (every number) and `<out>.md` (a section for benchmarks/RESULTS.md). Items run in order
of importance and stop when `--budget-s` is spent (the rest is recorded as skipped), so a lease of ~10
minutes gives results even if compilation is slow.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import tempfile
import time
import traceback
from pathlib import Path

import torch

from benchmarks.report import machine_line, sync

FAST = (("channels_last", True), ("fused_adam", True), ("cudnn_benchmark", True))


class Budget:
    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12)).item()


# ------------------------------------------------------------------------------------------------ checks
def check_triton(dev: torch.device, tiny: bool) -> dict:
    from condgen.ops.cond_depthwise import cond_depthwise_conv2d
    from condgen.ops.cond_depthwise_triton import triton_available

    if dev.type != "cuda" or not triton_available():
        return {"skipped": "needs CUDA and Triton"}
    c, s = (8, 16) if tiny else (256, 64)
    x = torch.randn(2, c, s, s, device=dev, requires_grad=True)
    k = torch.randn(2, c * 9, s, s, device=dev, requires_grad=True)
    out = {}
    for impl in ("reference", "triton"):
        y = cond_depthwise_conv2d(x, k, 3, impl=impl)
        gx, gk = torch.autograd.grad(y, (x, k), torch.ones_like(y))
        out[impl] = (y, gx, gk)
    errs = [_rel(a, b) for a, b in zip(out["triton"], out["reference"], strict=True)]
    return {"rel_err_out_gx_gk": errs, "passed": max(errs) < 1e-5}


def check_label_sparse(dev: torch.device, tiny: bool) -> dict:
    from benchmarks.activation_memory import random_seg
    from condgen.ops.label_conv import conv_labels, use_label_sparse

    size = 32 if tiny else 256
    seg = random_seg(2, 184, size).to(dev)
    conv = torch.nn.Conv2d(184, 128, 3, padding=1).to(dev)
    res = {}
    for mode in ("off", "on"):
        with use_label_sparse(mode):
            y = conv_labels(conv, seg.clone(), (size // 2, size // 2))
            gw, gb = torch.autograd.grad(y, (conv.weight, conv.bias), torch.ones_like(y))
            res[mode] = (y, gw, gb)
    errs = [_rel(a, b) for a, b in zip(res["on"], res["off"], strict=True)]
    return {"rel_err_out_gw_gb": errs, "passed": max(errs) < 1e-5}


def check_bf16_step(dev: torch.device, tiny: bool) -> dict:
    from benchmarks.harness import Config, Setup

    size, ngf = (64, 4) if tiny else (128, 16)
    cfgs = [Config("spade", size=size, ngf=ngf, ndf=ngf, batch=2, mixed_precision=mp)
            for mp in ("no", "bf16")]
    a = Setup(cfgs[0], dev)
    batch = a.next_batch()
    la = a.step(batch)
    b = Setup(cfgs[1], dev)  # seeded alike: identical initial weights
    lb = b.step(batch)
    rel = {k: abs(float(la[k]) - float(lb[k])) / max(abs(float(la[k])), 1e-6) for k in la}
    return {"loss_rel_diff": rel, "passed": max(rel.values()) < 0.05}  # tests/perf: bf16 loss_rtol 5e-2


def check_syncbn(dev: torch.device, tiny: bool) -> dict:
    import torch.distributed as dist

    from condgen.networks.spade_generator import SPADEGenerator

    torch.manual_seed(0)
    G = SPADEGenerator(8, crop_size=64, ngf=4, use_vae=False).to(dev)
    G_sync = torch.nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(G))
    n_sync = sum(isinstance(m, torch.nn.SyncBatchNorm) for m in G_sync.modules())
    if dev.type != "cuda":
        return {"converted_layers": n_sync, "skipped_forward": "SyncBatchNorm runs on CUDA only",
                "passed": n_sync > 0}
    init = not dist.is_initialized()
    if init:
        store = tempfile.NamedTemporaryFile(delete=False)
        dist.init_process_group("nccl", init_method=f"file://{store.name}", rank=0, world_size=1)
    try:
        labels = torch.randint(0, 8, (2, 64, 64), device=dev)
        seg = torch.nn.functional.one_hot(labels, 8).permute(0, 3, 1, 2).float()
        err = _rel(G_sync(seg), G(seg))
    finally:
        if init:
            dist.destroy_process_group()
    return {"converted_layers": n_sync, "rel_err": err, "passed": err < 1e-4}


# ------------------------------------------------------------------------------------------- benchmarks
def _measure(cfg, dev, steps: int) -> dict:
    from benchmarks.harness import measure

    try:
        r = measure(cfg, dev, steps=steps, shares=False)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return {"oom": True, "batch": cfg.batch}
    r.pop("step_times", None)
    return {"batch": cfg.batch, **r}


def bench_spade(dev, tiny, steps) -> dict:
    from benchmarks.harness import Config

    size, ngf, batch = (64, 4, 2) if tiny else (256, 64, 32)
    base = Config("spade", size=size, ngf=ngf, ndf=ngf, batch=batch)
    fp32 = _measure(base, dev, steps)
    fast = _measure(Config("spade", size=size, ngf=ngf, ndf=ngf, batch=batch, mixed_precision="bf16",
                           speed=FAST, num_workers=0 if tiny else 4), dev, steps)
    out = {"fp32": fp32, "bf16_fast": fast}
    if "images_per_s" in fp32 and "images_per_s" in fast:
        out["speedup"] = fast["images_per_s"] / fp32["images_per_s"]
    return out


def bench_ccfpse_batch(dev, tiny, steps) -> dict:
    from benchmarks.harness import Config
    from benchmarks.train_step import largest_batch

    size, ngf = (64, 4) if tiny else (256, 64)
    out = {}
    for name, kw in (("fp32", {}), ("bf16_fast", dict(mixed_precision="bf16", speed=FAST))):
        cfg = Config("ccfpse", size=size, ngf=ngf, ndf=ngf, batch=2, **kw)
        if dev.type == "cuda":
            import dataclasses

            cfg = dataclasses.replace(cfg, batch=largest_batch(cfg, dev, [1, 2, 4, 8, 12, 16, 24, 32, 48]))
        out[name] = _measure(cfg, dev, steps)
    return out


def bench_compile(dev, tiny, steps) -> dict:
    from benchmarks.harness import Config

    size, ngf, batch = (64, 4, 2) if tiny else (256, 64, 32)
    out = {}
    for name, comp in (("eager", ()), ("compiled", (("compile", True),))):
        extra = (("compile_backend", "eager"),) if tiny else ()  # CPU dry run: tracing only
        out[name] = _measure(Config("spade", size=size, ngf=ngf, ndf=ngf, batch=batch, mixed_precision="bf16",
                                    speed=FAST + comp + (extra if comp else ())), dev, steps)
    return out


def bench_label_sparse(dev, tiny, steps) -> dict:
    from benchmarks.harness import Config
    from benchmarks.label_sparse import loss_difference

    size, ngf = (64, 4) if tiny else (256, 64)
    out = {}
    for model, batch in (("spade", 2 if tiny else 16), ("ccfpse", 2 if tiny else 4)):
        res = {}
        for mode in ("off", "on"):
            res[mode] = _measure(Config(model, size=size, ngf=ngf, ndf=ngf, batch=batch, label_sparse=mode),
                                 dev, steps)
        if "images_per_s" in res["off"] and "images_per_s" in res["on"]:
            res["speedup"] = res["on"]["images_per_s"] / res["off"]["images_per_s"]
            small = [Config(model, size=size, ngf=ngf, ndf=ngf, batch=2, label_sparse=m)
                     for m in ("off", "on")]
            res["max_loss_diff"] = loss_difference(*small, dev)
        out[model] = res
    return out


def bench_triton_op(dev, tiny, steps) -> dict:
    from benchmarks.report import median_time
    from condgen.ops.cond_depthwise import cond_depthwise_conv2d
    from condgen.ops.cond_depthwise_triton import triton_available

    impls = ["reference", "lean"] + (["triton"] if dev.type == "cuda" and triton_available() else [])
    out = {}
    for c, s in ([(8, 16)] if tiny else [(1024, 32), (512, 64), (256, 128), (128, 256)]):
        x = torch.randn(1, c, s, s, device=dev, requires_grad=True)
        k = torch.randn(1, c * 9, s, s, device=dev, requires_grad=True)
        row = {}
        for impl in impls:
            def fb(impl=impl, x=x, k=k):
                y = cond_depthwise_conv2d(x, k, 3, impl=impl)
                torch.autograd.grad(y, (x, k), torch.ones_like(y))
            row[impl + "_ms"] = 1e3 * median_time(fb, repeat=max(steps, 3))
        if "triton_ms" in row:
            row["triton_vs_reference"] = row["reference_ms"] / row["triton_ms"]
        out[f"{c}ch@{s}"] = row
    return out


CHECKS = (("triton_vs_reference", check_triton), ("label_sparse_vs_dense", check_label_sparse),
          ("bf16_step_vs_fp32", check_bf16_step), ("syncbatchnorm_one_process", check_syncbn))
BENCHES = (("spade_256_b32_bf16_vs_fp32", bench_spade), ("label_sparse_on_off", bench_label_sparse),
           ("triton_op", bench_triton_op), ("ccfpse_largest_batch", bench_ccfpse_batch),
           ("compile_on_off", bench_compile))


def markdown(results: dict) -> str:
    lines = ["## GPU run (`python -m benchmarks.gpu`)", "", "```text", results["machine"], "```", ""]
    lines += ["| item | result |", "|---|---|"]
    for name, r in {**results["checks"], **results["benchmarks"]}.items():
        lines.append(f"| {name} | `{json.dumps(r, default=str)[:900]}` |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes; runs on CPU")
    ap.add_argument("--out", default="benchmarks/gpu_results", help="writes <out>.json and <out>.md")
    ap.add_argument("--budget-s", type=float, default=480.0, help="stop starting new items after this")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--only", default=None, help="comma list of item names")
    args = ap.parse_args(argv)
    gpu = torch.cuda.is_available()
    if not gpu and not args.dry_run:
        raise SystemExit("benchmarks.gpu needs a CUDA device (use --dry-run to check the script on CPU)")
    dev = torch.device("cuda" if gpu and not args.dry_run else "cpu")
    tiny = args.dry_run
    steps = 1 if tiny else args.steps
    budget = Budget(args.budget_s)
    results = {"machine": machine_line(), "python": platform.python_version(), "torch": torch.__version__,
               "dry_run": tiny, "device": str(dev), "checks": {}, "benchmarks": {}}
    wanted = set(args.only.split(",")) if args.only else None
    for group, items in (("checks", CHECKS), ("benchmarks", BENCHES)):
        for name, fn in items:
            if wanted is not None and name not in wanted:
                continue
            if budget.left() <= 0:
                results[group][name] = {"skipped": "time budget spent"}
                continue
            t0 = time.perf_counter()
            try:
                r = fn(dev, tiny) if group == "checks" else fn(dev, tiny, steps)
            except Exception as err:  # one failing item must not lose the others' numbers
                r = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-2000:]}
            r["seconds"] = round(time.perf_counter() - t0, 1)
            results[group][name] = r
            print(f"{name}: {json.dumps(r, default=str)[:400]}", flush=True)
            sync()
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    out.with_suffix(".md").write_text(markdown(results))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return results


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
