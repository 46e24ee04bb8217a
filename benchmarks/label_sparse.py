"""Label-sparse convolutions against the dense convolutions they replace: per layer size, and in a step.

    python -m benchmarks.label_sparse op   [--size 256] [--batch 1] [--repeat 3]      # SPADE's shared convs
    python -m benchmarks.label_sparse step [--models spade,ccfpse] [--size 128] [--ngf 32] [--steps 3]
    python -m benchmarks.label_sparse memory [--size 256] [--ngf 64]   # SPADE G saved-for-backward bytes

`op`: forward + backward (weight and bias gradients; the label map needs none) of one SPADE shared conv
(COCO-Stuff: 184 channels = 182 + don't-care + instance edges -> 128, 3x3) at every resolution of the
256-px SPADE generator, `conv_labels` with the switch off (the dense conv of the nearest-resized one-hot
map: today's and the official computation) and on, interleaved round by round; median per-round ratio.
The last row is one generator pass (each size times its number of SPADE layers).

`step`: the whole training step (G step + D step, VGG, feature matching, KL for CC-FPSE) of
`benchmarks.harness`, fp32, no speed options, label-sparse 'off' vs 'on', both alive and their steps
interleaved; the ratio is the median of the per-round ratios. Then one step of each from identical weights
and the same batch: the largest absolute difference between their losses.

`memory`: the bytes the SPADE generator's training-mode forward saves for backward (distinct storages,
parameters and the input excluded: `benchmarks.memory.saved_tensor_bytes`), label-sparse off / on times
`spade_lean_backward` off / on, against both off. Deterministic: machine load does not change it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.activation_memory import random_seg
from benchmarks.report import machine_line, print_table, sync

# (resolution as a fraction of the crop, SPADE layers there) in the 'normal' SPADE generator
SPADE_LAYERS = ((1 / 32, 2), (1 / 16, 4), (1 / 8, 3), (1 / 4, 3), (1 / 2, 3), (1, 3))


def _fwd_bwd(conv: torch.nn.Conv2d, seg: torch.Tensor, size: tuple[int, int], mode: str) -> float:
    from condgen.ops.label_conv import conv_labels, use_label_sparse

    sync()
    t0 = time.perf_counter()
    with use_label_sparse(mode):  # the id maps are found once per map (the warm-up), as once per forward
        out = conv_labels(conv, seg, size)
        out.backward(torch.ones_like(out))
    sync()
    conv.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def run_op(args: argparse.Namespace, device: torch.device) -> list[list[str]]:
    seg = random_seg(args.batch, args.semantic_nc, args.size).to(device)
    conv = torch.nn.Conv2d(args.semantic_nc, 128, 3, padding=1).to(device)
    rows, total = [], {"off": 0.0, "on": 0.0}
    for frac, layers in SPADE_LAYERS:
        side = max(1, round(args.size * frac))
        size = (side, side)
        for mode in ("off", "on"):  # every layer resizes the full-size map, as in the generator
            _fwd_bwd(conv, seg, size, mode)  # warm-up
        times = {"off": [], "on": []}
        for r in range(args.repeat):
            for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
                times[mode].append(_fwd_bwd(conv, seg, size, mode))
        ratio = statistics.median(a / b for a, b in zip(times["off"], times["on"], strict=True))
        med = {m: statistics.median(t) for m, t in times.items()}
        for m in total:
            total[m] += layers * med[m]
        rows.append([f"{args.semantic_nc} -> 128 @ {side}^2 (x{layers})", f"{1e3 * med['off']:.1f}",
                     f"{1e3 * med['on']:.1f}", f"{ratio:.1f}x"])
        print(" | ".join(rows[-1]), flush=True)
    rows.append(["generator pass (sum)", f"{1e3 * total['off']:.0f}", f"{1e3 * total['on']:.0f}",
                 f"{total['off'] / total['on']:.1f}x"])
    return rows


def _flat(obj) -> list[torch.Tensor]:
    return [obj] if torch.is_tensor(obj) else [t for o in obj for t in _flat(o)]


def loss_difference(cfg_off, cfg_on, device: torch.device) -> float:
    """Largest |loss_off - loss_on| over the losses of one step from the same weights and batch."""
    from benchmarks.harness import Setup

    a, b = Setup(cfg_off, device), Setup(cfg_on, device)
    b.nets["G"].load_state_dict(a.nets["G"].state_dict())
    b.nets["D"].load_state_dict(a.nets["D"].state_dict())
    if "E" in a.nets:
        b.nets["E"].load_state_dict(a.nets["E"].state_dict())
    batch = a.next_batch()
    torch.manual_seed(1)
    la = a.step(batch)
    torch.manual_seed(1)  # the same VAE noise
    lb = b.step(batch)
    return max(abs(float(la[k]) - float(lb[k])) for k in la)


def run_step(args: argparse.Namespace, device: torch.device) -> list[list[str]]:
    from benchmarks.harness import Config, measure_many

    rows = []
    for model in args.models.split(","):
        cfgs = [Config(model, size=args.size, ngf=args.ngf, ndf=args.ngf, batch=args.batch, label_sparse=m)
                for m in ("off", "on")]
        off, on = measure_many(cfgs, device, steps=args.steps, shares=False, memory=False)
        ratio = statistics.median(a / b for a, b in zip(off["step_times"], on["step_times"], strict=True))
        diff = loss_difference(*cfgs, device)
        rows.append([model, args.size, args.ngf, args.batch, f"{off['step_s']:.2f}", f"{on['step_s']:.2f}",
                     f"{ratio:.2f}x", f"{diff:.1e}"])
        print(" | ".join(map(str, rows[-1])), flush=True)
    return rows


def run_memory(args: argparse.Namespace) -> list[list[str]]:
    import gin

    from benchmarks.memory import saved_tensor_bytes
    from condgen.networks.spade_generator import SPADEGenerator
    from condgen.ops.label_conv import use_label_sparse

    torch.manual_seed(0)
    seg = random_seg(args.batch, args.semantic_nc, args.size)
    rows, base = [], None
    for mode, lean in (("off", False), ("on", False), ("off", True), ("on", True)):
        gin.bind_parameter("spade_lean_backward.enabled", lean)
        with use_label_sparse(mode):
            torch.manual_seed(0)
            G = SPADEGenerator(args.semantic_nc, crop_size=args.size, ngf=args.ngf, use_vae=False).train()
            keep = [*G.parameters(), *G.buffers(), seg]
            out, saved = saved_tensor_bytes(lambda G=G: G(seg), exclude=keep)
            del out, G
        base = base or saved
        rows.append([mode, str(lean), f"{saved / 2**30:.3f}", f"{saved / base:.2f}x"])
        print(" | ".join(rows[-1]), flush=True)
    gin.clear_config()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["op", "step", "memory"])
    ap.add_argument("--size", type=int, default=None, help="op: crop (default 256); step: crop (default 128)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--ngf", type=int, default=32)
    ap.add_argument("--semantic-nc", type=int, default=184)
    ap.add_argument("--models", default="spade,ccfpse")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(machine_line())
    if args.what == "memory":
        args.size = args.size or 256
        print(f"SPADE generator saved-for-backward bytes, {args.semantic_nc} label channels, {args.size} px, "
              f"ngf {args.ngf}, batch {args.batch}, fp32, training mode")
        print_table(["label-sparse", "spade_lean_backward", "saved GiB", "vs both off"], run_memory(args))
    elif args.what == "op":
        args.size = args.size or 256
        print(f"SPADE shared conv fwd+bwd (weight + bias grads), batch {args.batch}, fp32, 3x3, label-sparse "
              f"off vs on, interleaved, median of {args.repeat}")
        print_table(["layer", "dense ms", "label-sparse ms", "speed-up (median ratio)"], run_op(args, device))
    else:
        args.size = args.size or 128
        print(f"training step fp32, COCO-Stuff labels, label-sparse off vs on interleaved, median of "
              f"{args.steps} rounds")
        print_table(["model", "size", "ngf", "batch", "off s/step", "on s/step", "speed-up (median ratio)",
                     "max loss diff"], run_step(args, device))


if __name__ == "__main__":
    main()
