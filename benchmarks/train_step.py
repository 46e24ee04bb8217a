"""The full training step (G step + D step, losses included) of SPADE and CC-FPSE, side by side.

    python -m benchmarks.train_step                 # CPU: paper configurations scaled to fit (see --help)
    python -m benchmarks.train_step --preset h100   # one GPU: 256 px, ngf/ndf 64, SPADE batch 32,
                                                    # CC-FPSE the largest batch that fits per variant
    python -m benchmarks.train_step --official PATH # against a checkout of the official code, side by side
                                                    # (benchmarks/official_step.py; label-sparse on/off:
                                                    # python -m benchmarks.label_sparse step)

Variants: 'official' (CC-FPSE only) = fp32, no options, the unfold op of the official code; 'condgen fp32' =
the lean op, no options (for SPADE the official computation: its baseline); 'condgen fast' = bf16 autocast
+ channels_last + fused Adam (+ cuDNN benchmark, pinned memory, workers and torch.compile on GPUs);
'+ checkpoint_heads' recomputes the CC heads in backward. Prints images/s (data loading included), the
speed-up over the model's first row, peak memory (CUDA allocator peak on GPUs; live tensor bytes beyond
weights and optimiser state on CPU), the bytes the G step saves for backward (CPU), and the share of each
part of the step: each part is timed in isolation on the same batch (median of 2), shares are of their sum,
and 'parts / step' compares that sum with the measured step (near 1 when the machine was steady).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import torch

from benchmarks.harness import Config, measure, measure_many
from benchmarks.report import machine_line, print_table

FAST_CPU = (("channels_last", True), ("fused_adam", True))
FAST_GPU = FAST_CPU + (("cudnn_benchmark", True), ("pin_memory", True), ("compile", True))


def variants(model: str, gpu: bool, compile_: bool) -> list[tuple[str, dict]]:
    fast = dict(speed=FAST_GPU if gpu and compile_ else FAST_CPU + (("compile", compile_),),
                mixed_precision="bf16", num_workers=4 if gpu else 0)
    if gpu and not compile_:
        fast["speed"] = FAST_GPU[:-1]
    out = [("official", dict(impl="reference"))] if model == "ccfpse" else []  # SPADE: same op either way
    out += [("condgen fp32", {}), ("condgen fast", fast)]
    if model == "ccfpse":
        out.append(("condgen fast + checkpoint_heads", dict(fast, checkpoint_heads=True)))
    return out


def largest_batch(cfg: Config, device: torch.device, candidates: list[int]) -> int:
    """The largest batch of `candidates` whose training step fits in GPU memory (searched uncompiled:
    every batch size would compile anew)."""
    best = 0
    speed = tuple((k, v) for k, v in cfg.speed if k != "compile")
    for b in candidates:
        try:
            trial = dataclasses.replace(cfg, batch=b, speed=speed)
            measure(trial, device, steps=1, warmup=0, shares=False, memory=False)
            best = b
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
    if best == 0:
        raise SystemExit(f"{cfg.model}: not even batch {candidates[0]} fits")
    return best


def _measure_or_oom(cfg: Config, device: torch.device, steps: int) -> dict | None:
    try:
        return measure(cfg, device, steps=steps)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return None


def main() -> None:
    if "--official" in sys.argv:  # side by side with the official code: its own module and options
        from benchmarks import official_step

        return official_step.main()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=["cpu", "h100"], default=None,
                    help="cpu: 64 px, ngf/ndf 32, batch 2; h100: 256 px, ngf/ndf 64, batch 32 (SPADE)")
    ap.add_argument("--models", default="spade,ccfpse")
    ap.add_argument("--size", type=int)
    ap.add_argument("--ngf", type=int)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="torch.compile in 'condgen fast' (default on GPU)")
    ap.add_argument("--only", default=None, help="comma list of variant names to run")
    args = ap.parse_args()
    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    preset = args.preset or ("h100" if gpu else "cpu")
    size, ngf, batch = (256, 64, 32) if preset == "h100" else (64, 32, 2)
    size, ngf, batch = args.size or size, args.ngf or ngf, args.batch or batch
    compile_ = args.compile or gpu
    torch.set_num_threads(args.threads)
    print(machine_line())
    kl = ", KL" if "ccfpse" in args.models else ""
    print(f"training step (G step + D step, VGG, feature matching{kl}), "
          f"{size}x{size}, ngf = ndf = {ngf}, COCO-Stuff labels (184 channels), median of {args.steps} steps")
    # untimed: the first configuration in a process would also pay one-off costs (thread pools, allocator)
    measure(Config("ccfpse", size=64, ngf=8, ndf=8, batch=2), device, steps=1, shares=False, memory=False)
    rows = []
    for model in args.models.split(","):
        wanted = args.only.split(",") if args.only else None
        named = [(name, Config(model, size=size, ngf=ngf, ndf=ngf, batch=batch, **kw))
                 for name, kw in variants(model, gpu, compile_) if wanted is None or name in wanted]
        if gpu and model == "ccfpse" and not args.batch:  # the largest batch that fits, per variant
            sizes = [1, 2, 4, 8, 12, 16, 24, 32, 48]
            named = [(n, dataclasses.replace(c, batch=largest_batch(c, device, sizes))) for n, c in named]
        if gpu:  # one at a time; a configuration that does not fit is reported, not fatal
            results = [_measure_or_oom(c, device, args.steps) for _, c in named]
        else:  # all alive, steps interleaved
            results = measure_many([c for _, c in named], device, steps=args.steps)
        base_ips = next((r["images_per_s"] for r in results if r is not None), float("nan"))
        for (name, cfg), r in zip(named, results, strict=True):
            if r is None:
                rows.append([model, name, cfg.batch, "OOM"] + [""] * 9)
                continue
            parts = {"data": r["data_s"], **{k: r[f"{k}_s"] for k in ("G", "D", "VGG", "optim")}}
            whole = sum(parts.values())
            rows.append([
                model, name, cfg.batch, f"{r['images_per_s']:.3g}", f"{r['images_per_s'] / base_ips:.2f}x",
                f"{r['peak_gib']:.2f}", f"{r['g_saved_gib']:.2f}",
                *(f"{100 * v / whole:.0f}%" for v in parts.values()),
                f"{whole / (r['step_s'] + r['data_s']):.2f}",
            ])
            print(" | ".join(map(str, rows[-1])), flush=True)
    print()
    print_table(["model", "variant", "batch", "images/s", "vs first", "peak GiB", "G saved GiB",
                 "data", "G(+E)", "D", "VGG", "optim", "parts / step"], rows)


if __name__ == "__main__":
    main()
