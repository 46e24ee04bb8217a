"""The conditional depthwise convolution: every implementation against the unfold reference, side by side.

    python -m benchmarks.cond_depthwise [--batch 1] [--repeat 7] [--threads 2] [--dtype float32]

For each (channels, resolution) at which the 256-px CC-FPSE generator (ngf 64) runs the op, it prints the
median time of forward + backward (gradients for x and the kernels), the bytes saved for backward and the
peak of live bytes during forward + backward (allocator peak on CUDA), and each as a ratio to the reference.
The last row sums the 14 calls of one generator pass. Implementations are interleaved within each repeat,
so a busy machine slows all of them alike; medians are reported.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.memory import MemoryMeter, saved_tensor_bytes
from benchmarks.report import machine_line, print_table, sync
from condgen.ops.cond_depthwise import IMPLS, cond_depthwise_conv2d
from condgen.ops.cond_depthwise_triton import triton_available

MiB = 2**20
# (channels, side, calls per generator pass) for a 256 x 256 COCO generator with ngf 64: conv_0 runs on the
# block's input channels, conv_2 on min(in, out).
GENERATOR_CALLS = (
    (1024, 8, 2),  # head_0
    (1024, 16, 4),  # G_middle_0, G_middle_1
    (1024, 32, 1), (512, 32, 1),  # up_0
    (512, 64, 1), (256, 64, 1),  # up_1
    (256, 128, 1), (128, 128, 1),  # up_2
    (128, 256, 1), (64, 256, 1),  # up_3
)


def inputs(b: int, c: int, side: int, dtype: torch.dtype, device: torch.device, channels_last: bool):
    x = torch.randn(b, c, side, side, device=device, dtype=dtype)
    kernels = 0.1 * torch.randn(b, 9 * c, side, side, device=device, dtype=dtype)
    if channels_last:
        x, kernels = (t.contiguous(memory_format=torch.channels_last) for t in (x, kernels))
    g = torch.randn(b, c, side, side, device=device, dtype=dtype)
    return x.requires_grad_(), kernels.requires_grad_(), g


def fwd_bwd(impl: str, x: torch.Tensor, kernels: torch.Tensor, g: torch.Tensor) -> None:
    x.grad = kernels.grad = None
    cond_depthwise_conv2d(x, kernels, impl=impl).backward(g)


def memory(impl: str, x: torch.Tensor, kernels: torch.Tensor, g: torch.Tensor) -> tuple[int, int]:
    """(bytes saved for backward, peak bytes above the inputs during forward + backward)."""
    x.grad = kernels.grad = None
    if x.is_cuda:
        sync()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out, saved = saved_tensor_bytes(lambda: cond_depthwise_conv2d(x, kernels, impl=impl))
        out.backward(g)
        del out
        sync()
        return saved, torch.cuda.max_memory_allocated() - base
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the meter sees this thread only: keep the lean path's temporaries on it
    try:
        with MemoryMeter(ignore=[x, kernels, g]) as meter:
            out, saved = saved_tensor_bytes(lambda: cond_depthwise_conv2d(x, kernels, impl=impl))
            out.backward(g)
            del out
    finally:
        torch.set_num_threads(threads)
    return saved, meter.peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--channels-last", action="store_true", help="inputs in NHWC memory format")
    ap.add_argument("--impls", default=None, help="comma list; default: every one usable here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = getattr(torch, args.dtype)
    usable = ["reference", "lean"] + (["triton"] if device.type == "cuda" and triton_available() else [])
    impls = args.impls.split(",") if args.impls else usable
    if impls[0] != "reference" or any(i not in IMPLS for i in impls):
        raise SystemExit(f"--impls must start with 'reference' and name known impls ({', '.join(IMPLS)})")
    print(machine_line())
    print(f"cond_depthwise_conv2d fwd+bwd, batch {args.batch}, {args.dtype}"
          f"{', channels-last' if args.channels_last else ''}, k=3, median of {args.repeat}")
    rows, total = [], {i: 0.0 for i in impls}
    total_mem = {i: [0, 0] for i in impls}
    for c, side, calls in GENERATOR_CALLS:
        x, kernels, g = inputs(args.batch, c, side, dtype, device, args.channels_last)
        times = {i: [] for i in impls}
        for i in impls:  # warm-up (and Triton compilation)
            fwd_bwd(i, x, kernels, g)
        for _ in range(args.repeat):
            for i in impls:
                sync()
                t0 = time.perf_counter()
                fwd_bwd(i, x, kernels, g)
                sync()
                times[i].append(time.perf_counter() - t0)
        med = {i: statistics.median(t) for i, t in times.items()}
        mem = {i: memory(i, x, kernels, g) for i in impls}
        for i in impls:
            total[i] += calls * med[i]
            total_mem[i][0] += calls * mem[i][0]
            total_mem[i][1] = max(total_mem[i][1], mem[i][1])
        rows.append(_row(f"{c} ch @ {side}^2 (x{calls})", impls, med, mem))
        del x, kernels, g
    pass_mem = {i: tuple(v) for i, v in total_mem.items()}
    rows.append(_row("generator pass (sum; peak: max)", impls, total, pass_mem))
    header = ["size"]
    for i in impls:
        header += [f"{i} ms"] + (["speed-up x"] if i != "reference" else [])
    for i in impls:
        header += [f"{i} saved MiB", f"{i} peak MiB"] + (["saved / peak ratio"] if i != "reference" else [])
    print_table(header, rows)


def _row(name: str, impls: list[str], med: dict, mem: dict) -> list[str]:
    ref_t, (ref_saved, ref_peak) = med["reference"], mem["reference"]
    row = [name]
    for i in impls:
        row.append(f"{1e3 * med[i]:.1f}")
        if i != "reference":
            row.append(f"{ref_t / med[i]:.2f}")
    for i in impls:
        saved, peak = mem[i]
        row += [f"{saved / MiB:.0f}", f"{peak / MiB:.0f}"]
        if i != "reference":
            row.append(f"{saved / ref_saved:.2f} / {peak / ref_peak:.2f}")
    return row


if __name__ == "__main__":
    main()
