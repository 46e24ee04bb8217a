"""How the training step's time and memory grow with resolution (64 -> 512) and with batch size.

    python -m benchmarks.scaling [--ngf 16] [--sizes 64,128,256,512] [--batches 1,2,4] [--batch-size-at 128]

For SPADE and CC-FPSE (lean op; and the official unfold op for comparison) it runs full training steps
(G step + D step, losses included, fp32) at each resolution with batch 1, then at each batch size at one
resolution, and prints seconds per step, peak memory (CUDA allocator on GPUs; live tensor bytes beyond
weights and optimiser state on CPU) and the growth relative to the first row of each sweep. On CPU the
models' steps at each point are interleaved, so the models compare fairly on a machine whose load varies.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.harness import Config, measure_many
from benchmarks.report import machine_line, print_table

MODELS = (
    ("SPADE", "spade", "lean"), ("CC-FPSE", "ccfpse", "lean"), ("CC-FPSE official op", "ccfpse", "reference"),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ngf", type=int, default=None, help="G and D width (CPU 16, GPU 64)")
    ap.add_argument("--sizes", default="64,128,256,512")
    ap.add_argument("--batches", default="1,2,4")
    ap.add_argument("--batch-size-at", type=int, default=128, help="resolution of the batch sweep")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=",".join(m[0] for m in MODELS))
    args = ap.parse_args()
    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    ngf = args.ngf or (64 if gpu else 16)
    torch.set_num_threads(args.threads)
    print(machine_line())
    print(f"training step, fp32, ngf = ndf = {ngf}, COCO-Stuff labels (184 channels), median of {args.steps}")
    sweeps = [("resolution", [(s, 1) for s in map(int, args.sizes.split(","))]),
              ("batch", [(args.batch_size_at, b) for b in map(int, args.batches.split(","))])]
    models = [m for m in MODELS if m[0] in args.models.split(",")]
    rows, first = [], {}
    for sweep, points in sweeps:
        for size, batch in points:
            cfgs = [Config(m, size=size, ngf=ngf, ndf=ngf, batch=batch, impl=impl) for _, m, impl in models]
            try:  # every model at this point; interleaved on CPU (see harness.measure_many)
                results = measure_many(cfgs, device, steps=args.steps, shares=False)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                results = [None] * len(cfgs)
            for (label, _, _), r in zip(models, results, strict=True):
                if r is None:
                    rows.append([label, sweep, size, batch, "OOM", "", "", "", ""])
                    continue
                base = first.setdefault((label, sweep), r)
                rows.append([
                    label, sweep, size, batch, f"{r['step_s']:.3g}", f"{r['step_s'] / base['step_s']:.2f}x",
                    f"{batch / (r['step_s'] + r['data_s']):.3g}", f"{r['peak_gib']:.3f}",
                    f"{r['peak_gib'] / base['peak_gib']:.2f}x",
                ])
                print(" | ".join(map(str, rows[-1])), flush=True)
    rows.sort(key=lambda row: [m[0] for m in models].index(row[0]))  # grouped by model, sweeps in order
    print()
    print_table(["model", "sweep", "size", "batch", "s/step", "time growth", "images/s", "peak GiB",
                 "memory growth"], rows)


if __name__ == "__main__":
    main()
