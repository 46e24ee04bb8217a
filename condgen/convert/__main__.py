"""`python -m condgen.convert {spade|ccfpse|oasis|sean|sdm} --flags "..." --checkpoint_dir DIR --out OUT`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from condgen.convert.export import official_config_gin, write_run_dir
from condgen.convert.keys import OfficialFileError
from condgen.convert.official import REPOS, load_official, parse_official_flags


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except (OfficialFileError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m condgen.convert",
        description="Convert official NVlabs/SPADE, xh-liu/CC-FPSE, tzt101/CLADE, boschresearch/OASIS, "
        "sj-li/DP_GAN, ZPdesu/SEAN or WeilunWang/semantic-diffusion-model (SDM) checkpoints into a condgen "
        "run dir.",
    )
    p.add_argument(
        "repo", choices=(*REPOS, "oasis", "dpgan", "sean", "sdm"),
        help="which official code base wrote the checkpoint",
    )
    p.add_argument(
        "--flags",
        required=True,
        help='the official command line the model was trained/tested with, e.g. "--dataset_mode coco"',
    )
    p.add_argument(
        "--checkpoint_dir",
        required=True,
        type=Path,
        help="folder holding {which_epoch}_net_G.pth (and _D, _E), e.g. checkpoints/coco_pretrained",
    )
    p.add_argument("--which_epoch", default="latest", help="checkpoint prefix (official --which_epoch)")
    p.add_argument("--out", required=True, type=Path, help="new condgen run directory to write")
    args = p.parse_args(argv)
    if args.repo in ("oasis", "dpgan"):  # {which_epoch}_{G,D,EMA}.pth under checkpoint_dir(/models)
        from condgen.convert.oasis import convert_main

        return convert_main(args.flags, args.checkpoint_dir, args.which_epoch, args.out, args.repo)
    if args.repo == "sean":  # SEAN: {which_epoch}_net_{G,D}.pth, G holding the style encoder
        from condgen.convert.sean import convert_main as convert_sean

        return convert_sean(args.flags, args.checkpoint_dir, args.which_epoch, args.out)
    if args.repo == "sdm":  # SDM: ema_0.9999_<step>.pt and/or model<step>.pt under checkpoint_dir
        from condgen.convert.sdm import convert_main as convert_sdm

        return convert_sdm(args.flags, args.checkpoint_dir, args.which_epoch, args.out)

    ckpt = args.checkpoint_dir
    files = {n: ckpt / f"{args.which_epoch}_net_{n}.pth" for n in ("G", "D", "E")}
    if not files["G"].is_file():
        found = ", ".join(sorted(f.name for f in ckpt.glob("*.pth"))) if ckpt.is_dir() else "folder missing"
        print(
            f"error: {files['G']} not found (found: {found or 'no .pth files'}); "
            "check --checkpoint_dir and --which_epoch",
            file=sys.stderr,
        )
        return 2
    cfg = parse_official_flags(args.repo, args.flags)
    sources = {n: (f if f.is_file() else None) for n, f in files.items()}
    if not cfg.use_vae:
        sources["E"] = None
    nets = load_official(args.repo, args.flags, **sources)
    meta = {
        "repo": args.repo,
        "flags": args.flags,
        "loaded": {n: str(f) for n, f in sources.items() if f is not None},
        "freshly_initialised": sorted(set(nets) - {n for n, f in sources.items() if f is not None}),
    }
    out = write_run_dir(args.out, nets, official_config_gin(cfg, args.flags), cfg.spec, meta)
    print(f"wrote {out} (networks: {', '.join(sorted(nets))}; loaded from {ckpt})")
    if meta["freshly_initialised"]:
        print(f"note: {', '.join(meta['freshly_initialised'])} had no checkpoint and are freshly initialised")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
