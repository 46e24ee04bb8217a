"""Generator activation memory, CC-FPSE vs SPADE: official op, lean op, lean op + `checkpoint_heads`.

    python -m benchmarks.activation_memory [--size 256] [--ngf 64] [--batch 1] [--semantic-nc 184]

Runs one training-mode forward of each generator on a random COCO-sized label map (184 channels) and reports
(a) the bytes of tensors the autograd graph keeps alive after the forward (output excluded; this counts what
activation checkpointing keeps, too), (b) the official analysis's measure: distinct storages saved for
backward, parameters excluded (a lower bound that does not see checkpoint frames), and (c) the peak of
live bytes during forward + backward. Then the time of a forward + backward with and without the switch.
Both generators take the downsampled label map as input (`use_vae=False`); the VAE path changes only `fc`.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from benchmarks.memory import GiB, MemoryMeter, saved_tensor_bytes
from benchmarks.report import machine_line, print_table
from condgen.blocks.cond_conv import CCResBlock
from condgen.networks.ccfpse_generator import CCFPSEGenerator
from condgen.networks.spade_generator import SPADEGenerator


def random_seg(b: int, nc: int, size: int) -> torch.Tensor:
    labels = torch.randint(0, nc - 1, (b, size // 16, size // 16))
    labels = F.interpolate(labels[:, None].float(), size=(size, size), mode="nearest")[:, 0].long()
    seg = F.one_hot(labels, nc).permute(0, 3, 1, 2).float()  # blocky regions, last channel (edges) 0
    return seg.contiguous()


def measure(G: torch.nn.Module, seg: torch.Tensor, timed: bool) -> dict[str, float]:
    params = list(G.parameters()) + list(G.buffers()) + [seg]
    G.train()
    with MemoryMeter(ignore=params) as meter:
        t0 = time.perf_counter()
        fake, saved = saved_tensor_bytes(lambda: G(seg), exclude=params)
        t1 = time.perf_counter()
        alive = meter.current() - fake.untyped_storage().nbytes()
        fake.backward(torch.ones_like(fake) / fake.numel())
        t2 = time.perf_counter()
        del fake
        peak = meter.peak
    G.zero_grad(set_to_none=True)
    row = {"alive": alive / GiB, "saved": saved / GiB, "peak": peak / GiB}
    if timed:
        row |= {"fwd_s": t1 - t0, "bwd_s": t2 - t1}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--semantic-nc", type=int, default=184)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    seg = random_seg(args.batch, args.semantic_nc, args.size)
    kw = dict(crop_size=args.size, ngf=args.ngf, use_vae=False)
    print(machine_line())
    print(f"generators at {args.size}x{args.size}, batch {args.batch}, semantic_nc {args.semantic_nc}, "
          f"ngf {args.ngf}, fp32, training mode")
    for warm in (SPADEGenerator, CCFPSEGenerator):  # first-call costs (thread pools, lazy inits) not timed
        measure(warm(args.semantic_nc, crop_size=64, ngf=4, use_vae=False), seg[..., :64, :64], timed=False)
    rows = {}
    rows["SPADE"] = measure(SPADEGenerator(args.semantic_nc, **kw), seg, timed=True)
    for name, impl, ckpt in (("CC-FPSE, official unfold op", "reference", False), ("CC-FPSE", "lean", False),
                             ("CC-FPSE + checkpoint_heads", "lean", True)):
        block = lambda i, o, c, impl=impl, ckpt=ckpt: CCResBlock(i, o, c, impl=impl, checkpoint_heads=ckpt)  # noqa: E731
        rows[name] = measure(CCFPSEGenerator(args.semantic_nc, block=block, **kw), seg, timed=True)
    base = rows["SPADE"]
    table = [
        [name, f"{r['alive']:.3f}", f"{r['alive'] / base['alive']:.2f}x", f"{r['saved']:.3f}",
         f"{r['peak']:.3f}", f"{r['fwd_s']:.2f}", f"{r['bwd_s']:.2f}", f"{r['fwd_s'] + r['bwd_s']:.2f}"]
        for name, r in rows.items()
    ]
    print_table(["generator", "kept after fwd GiB", "vs SPADE", "saved-hooks GiB", "peak GiB",
                 "fwd s", "bwd s", "fwd+bwd s"], table)


if __name__ == "__main__":
    main()
