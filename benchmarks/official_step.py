"""condgen's training step against the official code's, side by side in one process (same weights, batch).

    git clone https://github.com/NVlabs/SPADE /tmp/SPADE          # or: git clone https://github.com/xh-liu/CC-FPSE
    python -m benchmarks.official_step --official /tmp/SPADE --model spade --size 128 --ngf 32
    python -m benchmarks.official_step --official /tmp/CC-FPSE --model ccfpse --size 128 --ngf 32

The official code is never committed or vendored: it is imported from the checkout given by path (its
`models/`, `options/`, `trainers/` packages). Both sides are fp32, no speed options, COCO-Stuff labels
(182 + don't-care + instance edges), the official losses (GAN hinge, feature matching, VGG; KL for CC-FPSE
with its VAE). The official networks are built first (seeded) and their state dicts are loaded into condgen's
(`condgen.convert.load_official_state`), so both start from the same weights; every round runs one
official `Pix2PixTrainer`-style step (G step then D step) and one condgen step on the same batch, in
alternating order; the reported ratio is the median of the per-round time ratios. The losses of the first
round are compared (max absolute difference). Untested here: the official code is not on the dev machine, so
this module has only been checked for syntax and for condgen's side; expect to adapt the argv if the
official options change. VGG uses the official pretrained weights on the official side (torchvision
download) and the same weights are copied into condgen's `VGGLoss`.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmarks.report import machine_line, print_table, sync


def official_argv(model: str, size: int, ngf: int, batch: int, root: Path) -> list[str]:
    argv = ["--dataset_mode", "coco", "--dataroot", str(root), "--label_nc", "182",
            "--contain_dontcare_label",
            "--crop_size", str(size), "--load_size", str(size), "--ngf", str(ngf), "--ndf", str(ngf),
            "--batchSize", str(batch), "--gpu_ids", "-1", "--nThreads", "0", "--name", "bench",
            "--checkpoints_dir", str(root / "ckpt")]
    if model == "ccfpse":
        argv += ["--netG", "condconv", "--netD", "fpse", "--use_vae"]
    return argv


def build_official(path: Path, argv: list[str]):
    sys.path.insert(0, str(path))
    old = sys.argv
    sys.argv = ["train.py", *argv]
    try:
        opts = importlib.import_module("options.train_options").TrainOptions().parse()
    finally:
        sys.argv = old
    torch.manual_seed(0)
    model = importlib.import_module("models.pix2pix_model").Pix2PixModel(opts)
    opt_G, opt_D = model.create_optimizers(opts)
    return opts, model, opt_G, opt_D


def official_step(model, opt_G, opt_D, data: dict) -> dict[str, float]:
    opt_G.zero_grad()
    g_losses, _ = model(data, mode="generator")
    sum(g_losses.values()).mean().backward()
    opt_G.step()
    opt_D.zero_grad()
    d_losses = model(data, mode="discriminator")
    sum(d_losses.values()).mean().backward()
    opt_D.step()
    return {k: float(v.mean()) for k, v in {**g_losses, **d_losses}.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", type=Path, required=True,
                    help="a checkout of NVlabs/SPADE or xh-liu/CC-FPSE")
    ap.add_argument("--model", choices=["spade", "ccfpse"], default="spade")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--ngf", type=int, default=32)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--label-sparse", default="auto", choices=["auto", "on", "off"])
    args = ap.parse_args()
    if not (args.official / "models" / "pix2pix_model.py").is_file():
        raise SystemExit(f"{args.official} is not a checkout of the official code (no "
                         "models/pix2pix_model.py); git clone https://github.com/NVlabs/SPADE "
                         "(or xh-liu/CC-FPSE) first")
    torch.set_num_threads(args.threads)
    from benchmarks.harness import Config, Setup, miniature_coco
    from condgen.convert.keys import load_official_state
    from condgen.convert.official import official_renames

    device = torch.device("cpu")
    root = miniature_coco(max(args.size, 64), n=max(16, 2 * args.batch))
    _, official, opt_G, opt_D = build_official(args.official, official_argv(args.model, args.size, args.ngf,
                                                                            args.batch, root))
    ours = Setup(Config(args.model, size=args.size, ngf=args.ngf, ndf=args.ngf, batch=args.batch,
                        label_sparse=args.label_sparse), device)
    for name in ("G", "D", "E"):
        theirs = getattr(official, f"net{name}", None)
        if theirs is not None and name in ours.nets:
            load_official_state(ours.nets[name], theirs.state_dict(), official_renames(ours.nets[name]), name)
    ours.vgg.load_state_dict(official.criterionVGG.state_dict(), strict=False)
    times: dict[str, list[float]] = {"official": [], "condgen": []}
    first: dict[str, dict[str, float]] = {}
    for r in range(args.rounds + 1):  # round 0: warm-up, and the loss comparison
        seg, real = ours.next_batch()
        labels = seg[:, :-1].argmax(1, keepdim=True).float()  # the official dataset's label and instance
        data = {"label": labels, "instance": torch.zeros_like(labels), "image": real, "path": ["x"]}
        order = ("official", "condgen") if r % 2 == 0 else ("condgen", "official")
        for side in order:
            torch.manual_seed(r)
            sync()
            t0 = time.perf_counter()
            losses = official_step(official, opt_G, opt_D, data) if side == "official" else \
                {k: float(v) for k, v in ours.step((seg, real)).items()}
            sync()
            if r == 0:
                first[side] = losses
            else:
                times[side].append(time.perf_counter() - t0)
    ratio = statistics.median(a / b for a, b in zip(times["official"], times["condgen"], strict=True))
    print(machine_line())
    print("losses after one step:", first)
    print_table(["model", "size", "ngf", "official s", "condgen s", "condgen speed-up (median ratio)"],
                [[args.model, args.size, args.ngf, f"{statistics.median(times['official']):.2f}",
                  f"{statistics.median(times['condgen']):.2f}", f"{ratio:.2f}x"]])


if __name__ == "__main__":
    main()
