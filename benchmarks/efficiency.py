"""Efficiency of the generators side by side: SPADE, CLADE, CLADE-ICPE, OASIS and DP-GAN (issue 20).

    OMP_NUM_THREADS=1 python -m benchmarks.efficiency                 # the RESULTS.md table (~3 min)
    python -m benchmarks.efficiency --width 16 --size 128 --rounds 5 --threads 2

Columns, per model (COCO-Stuff labels: 182 classes + don't-care, + instance edges for SPADE / CLADE as the
originals use them, 184 channels; 183 for OASIS and DP-GAN):
- parameters of G and D at the paper width (ngf 64), counted on the meta device;
- MACs of one G forward at 256 x 256, batch 1, paper width: `torch.utils.flop_counter` (convolutions and
  matrix products; a table lookup, a norm or an activation counts 0), label-sparse convolutions off so
  that every convolution over the one-hot map is counted as the original computes it. CLADE's lookups and
  ICPE's positional map (a connected-components pass) are therefore not in the count: they are gathers;
- measured CPU seconds at a small width (`--width`, `--size`, batch `--batch`): one training step (G step +
  D step of the model's own objective: hinge + feature matching for SPADE / CLADE, N+1 cross-entropy +
  LabelMix for OASIS, + feature alignment and the multi-scale hinge for DP-GAN; VGG off everywhere) and one
  inference (G forward, eval mode, no_grad), label-sparse 'auto' (the default). Rounds alternate the models;
  each time is the median, each ratio is against SPADE.
DP-GAN appears twice: 'official' (heads frozen, the original's behaviour) and 'heads trained'.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from benchmarks.report import machine_line, print_table

COCO_CLASSES = 183  # 182 + don't-care


@dataclass
class Model:
    name: str
    edges: bool  # the label map has an instance-edge channel
    make_G: Callable[..., nn.Module]
    make_D: Callable[..., nn.Module]
    make_objective: Callable[[], nn.Module]
    train_heads: bool = False


def models() -> list[Model]:
    from condgen.blocks.clade import CLADE, CLADEResBlock
    from condgen.networks.clade_generator import CLADEGenerator, CLADEICPEGenerator
    from condgen.networks.dpgan import DPGANDiscriminator, DPGANGenerator
    from condgen.networks.oasis_discriminator import OASISDiscriminator
    from condgen.networks.oasis_generator import OASISGenerator
    from condgen.networks.patch_discriminator import MultiscalePatchDiscriminator
    from condgen.networks.spade_generator import SPADEGenerator
    from condgen.objectives.dpgan import DPGANObjective
    from condgen.objectives.oasis import OASISObjective
    from condgen.objectives.pix2pixhd import Pix2PixHDObjective

    clade_block = partial(CLADEResBlock, norm=partial(CLADE, instance_edge=True))
    icpe_block = partial(CLADEResBlock, norm=partial(CLADE, instance_edge=True, icpe=True))
    hinge = partial(Pix2PixHDObjective, lambda_vgg=0.0)
    oasis = partial(OASISObjective, dontcare_channel=COCO_CLASSES - 1)
    dpgan = partial(DPGANObjective, dontcare_channel=COCO_CLASSES - 1)
    patch = MultiscalePatchDiscriminator
    return [
        Model("SPADE", True, SPADEGenerator, patch, hinge),
        Model("CLADE", True, partial(CLADEGenerator, block=clade_block), patch, hinge),
        Model("CLADE-ICPE", True, partial(CLADEICPEGenerator, block=icpe_block), patch, hinge),
        Model("OASIS", False, OASISGenerator, OASISDiscriminator, oasis),
        Model("DP-GAN (official)", False, DPGANGenerator, DPGANDiscriminator, dpgan),
        Model("DP-GAN (heads trained)", False, DPGANGenerator, partial(DPGANDiscriminator, train_heads=True),
              dpgan, train_heads=True),
    ]


def label_map(batch: int, size: int, edges: bool, classes: int = COCO_CLASSES, seed: int = 0) -> Tensor:
    """A one-hot map of blocky random regions (+ the edges between them), like a segmentation."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, classes, (batch, 1, size // 16, size // 16), generator=g)
    ids = torch.nn.functional.interpolate(coarse.float(), size=(size, size), mode="nearest").long()
    seg = torch.zeros(batch, classes, size, size).scatter_(1, ids, 1.0)
    if edges:
        e = torch.zeros_like(ids, dtype=torch.bool)
        e[..., 1:, :] |= ids[..., 1:, :] != ids[..., :-1, :]
        e[..., :-1, :] |= ids[..., 1:, :] != ids[..., :-1, :]
        e[..., :, 1:] |= ids[..., :, 1:] != ids[..., :, :-1]
        e[..., :, :-1] |= ids[..., :, 1:] != ids[..., :, :-1]
        seg = torch.cat([seg, e.float()], 1)
    return seg


def sizes(m: Model) -> tuple[int, int]:
    nc = COCO_CLASSES + int(m.edges)
    with torch.device("meta"):
        return (sum(p.numel() for p in m.make_G(nc, crop_size=256).parameters()),
                sum(p.numel() for p in m.make_D(nc).parameters()))


@torch.no_grad()
def gmacs(m: Model) -> float:
    """MACs of one G forward at 256 px, batch 1, ngf 64, dense convolutions (the original's computation)."""
    from torch.utils.flop_counter import FlopCounterMode

    from condgen.ops.label_conv import use_label_sparse

    G = m.make_G(COCO_CLASSES + int(m.edges), crop_size=256).eval()
    seg = label_map(1, 256, m.edges)
    with use_label_sparse("off"), FlopCounterMode(display=False) as counter:
        G(seg)
    return counter.get_total_flops() / 2 / 1e9


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def setup(m: Model, width: int, size: int, batch: int):
    torch.manual_seed(0)
    nc = COCO_CLASSES + int(m.edges)
    G = m.make_G(nc, crop_size=size, ngf=width).train()
    D = m.make_D(nc, ndf=width).train()
    objective = m.make_objective()
    params_G = [p for p in G.parameters() if p.requires_grad]
    params_D = [p for p in D.parameters() if p.requires_grad]
    opt_G, opt_D = torch.optim.Adam(params_G, 1e-4, betas=(0.0, 0.9)), torch.optim.Adam(params_D, 4e-4)
    seg, real = label_map(batch, size, m.edges, seed=1), torch.rand(batch, 3, size, size) * 2 - 1

    def step() -> None:
        opt_G.zero_grad(set_to_none=True)
        sum(objective.generator_losses(G, D, None, seg, real).values()).backward()
        opt_G.step()
        opt_D.zero_grad(set_to_none=True)
        sum(objective.discriminator_losses(G, D, None, seg, real).values()).backward()
        opt_D.step()

    @torch.no_grad()
    def infer() -> None:
        G.eval()
        G(seg)
        G.train()

    return step, infer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=16, help="ngf = ndf of the timed networks")
    ap.add_argument("--size", type=int, default=128, help="timed image size (square)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line())
    ms = models()
    counts = {m.name: sizes(m) for m in ms}
    macs: dict[str, float] = {}
    for m in ms:
        if m.train_heads:  # the same generator as the official cell
            macs[m.name] = macs["DP-GAN (official)"]
        else:
            macs[m.name] = gmacs(m)
    runs = {m.name: setup(m, args.width, args.size, args.batch) for m in ms}
    for step, infer in runs.values():  # warm-up
        step()
        infer()
    times: dict[str, dict[str, list[float]]] = {n: {"step": [], "infer": []} for n in runs}
    for r in range(args.rounds):
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for name in order:
            step, infer = runs[name]
            times[name]["step"].append(timed(step))
            times[name]["infer"].append(timed(infer))
    med = {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}
    base = ms[0].name
    rows = []
    for m in ms:
        g, d = counts[m.name]
        rows.append([
            m.name, f"{g / 1e6:.2f}M", f"{d / 1e6:.2f}M", f"{macs[m.name]:.1f}",
            f"{macs[m.name] / macs[base]:.2f}x", f"{med[m.name]['step']:.3f}",
            f"{med[m.name]['step'] / med[base]['step']:.2f}x", f"{med[m.name]['infer'] * 1e3:.1f}",
            f"{med[m.name]['infer'] / med[base]['infer']:.2f}x",
        ])
    print(f"params at ngf = ndf = 64 (COCO-Stuff labels); G GMACs at 256 px, batch 1, dense; times at ngf "
          f"= ndf = {args.width}, {args.size} px, batch {args.batch}, fp32, median of {args.rounds} rounds")
    header = ["model", "params G", "params D", "G GMACs", "vs SPADE", "s / step", "vs SPADE",
              "ms / inference", "vs SPADE"]
    print_table(header, rows)


if __name__ == "__main__":
    main()
