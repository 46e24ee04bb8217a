"""One OASIS training step next to one SPADE step at the same size, side by side in one process.

    python -m benchmarks.oasis_step                       # the synthetic benchmark's cells (gin/bench/)
    python -m benchmarks.oasis_step --size 128 --batch 4 --rounds 5 --threads 2

Each model is `gin/bench/synthetic.gin` plus its cell (SPADE: the Table 2 baseline, SPADE G + multi-scale
PatchGAN, hinge + feature matching; OASIS: `gin/ablations/oasis/oasis.gin`, its U-Net discriminator,
class-balanced N+1 cross-entropy and LabelMix), built by `build_run` exactly as training builds them, fp32.
A step is a G step then a D step on the same batch (`condgen.train.loop`), data loading excluded. Rounds
alternate the models; the ratio is the median of the per-round ratios, so a machine whose load changes
slows both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from benchmarks.harness import PlainAccelerator
from benchmarks.report import machine_line, print_table

GIN = Path(__file__).resolve().parents[1] / "gin"
CELLS = {"SPADE": "ablations/ccfpse_table2/baseline_spade__mspatch.gin", "OASIS": "ablations/oasis/oasis.gin"}


def build(cell: str, size: int, batch: int):
    import gin

    from condgen.cli.gin_setup import parse_gin
    from condgen.train.setup import TrainSettings, build_run

    parse_gin([GIN / "bench" / "synthetic.gin", GIN / cell], [f"SyntheticLandscapes.crop_size = {size}"])
    from condgen.objectives import Pix2PixHDObjective

    def bound(name: str, default=None):
        try:
            return gin.query_parameter(name).scoped_configurable_fn
        except ValueError:  # not bound: train's default
            return default

    settings = TrainSettings(
        dataset=bound("train.dataset"),
        objective=bound("train.objective", Pix2PixHDObjective),
        batch_size=batch,
    )
    run = build_run(settings, accelerator=PlainAccelerator("no", torch.device("cpu")))
    items = [run.data[i] for i in range(batch)]
    return run, run.to_device(torch.utils.data.default_collate(items))


def step_seconds(run, batch) -> float:
    from condgen.train.loop import discriminator_step, generator_step

    t0 = time.perf_counter()
    generator_step(run.step, [batch])
    discriminator_step(run.step, [batch])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = {name: build(cell, args.size, args.batch) for name, cell in CELLS.items()}
    for run, batch in models.values():
        step_seconds(run, batch)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in models}
    for r in range(args.rounds):
        order = list(models) if r % 2 == 0 else list(reversed(models))
        for name in order:
            times[name].append(step_seconds(*models[name]))
    ratios = [o / s for o, s in zip(times["OASIS"], times["SPADE"], strict=True)]
    print(machine_line())
    print(f"synthetic benchmark cells at {args.size} px, batch {args.batch}, fp32, {args.rounds} rounds")
    rows = []
    for name, (run, _) in models.items():
        params = {k: sum(p.numel() for p in net.parameters()) for k, net in run.gan.named().items()}
        rows.append(
            [
                name,
                f"{statistics.median(times[name]):.3f}",
                f"{params['G'] / 1e6:.2f}M",
                f"{params['D'] / 1e6:.2f}M",
            ]
        )
    print_table(["model", "s / step (median)", "params G", "params D"], rows)
    print(f"OASIS / SPADE step time: {statistics.median(ratios):.2f}x (median of per-round ratios)")


if __name__ == "__main__":
    main()
