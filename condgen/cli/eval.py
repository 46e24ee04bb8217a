"""`python -m condgen eval RUN`: evaluate a run (or a checkpoint, or a converted official folder).

`python -m condgen eval --images DIR --labels DIR [--real DIR]` scores images made elsewhere under the same
protocol (`results/<name>/test_latest/images/synthesized_image/` and SDM's `samples/` are found inside DIR).

Writes `RUN/eval/<split>_step<N>.json` (or `--out`) and prints the metrics with the protocol line. Runs on one
CPU, or distributed: `accelerate launch -m condgen eval RUN` or
`torchrun --nproc_per_node 2 -m condgen eval RUN`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from condgen.cli.gin_setup import add_bindings_argument
from condgen.infer.diffusion import add_sampler_args, sampler_overrides
from condgen.rundir import CheckpointError


def _one_of(p: argparse.ArgumentParser, flag: str, choices: tuple[str, ...], help: str) -> None:
    """An option taking one of `choices`; the first is the default."""
    p.add_argument(flag, choices=choices, default=choices[0], help=help)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m condgen eval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "source",
        type=Path,
        nargs="?",
        help="run directory, step_<N> checkpoint or converted official folder (or use --images)",
    )
    p.add_argument(
        "--images",
        type=Path,
        help="score images made elsewhere instead of a run: a folder, or a results folder in the official "
        "(results/<name>/test_latest/images/synthesized_image), SDM (samples/) or FreestyleNet layout",
    )
    p.add_argument("--labels", type=Path, help="with --images: the label maps (ids), paired by file stem")
    p.add_argument("--real", type=Path, help="with --images: the real photos, paired by file stem")
    p.add_argument("--label_nc", type=int, help="with --images: classes (default: the --dataset's)")
    p.add_argument(
        "--allow_missing",
        action="store_true",
        help="with --images: score the pairs that exist when files lack partners (their names are recorded)",
    )
    p.add_argument("--out", type=Path, help="metrics JSON (default RUN/eval/<split>_step<N>.json)")
    p.add_argument("--split", default="val")
    p.add_argument("--num_images", type=int, help="first N images of the split (default: all)")
    _one_of(
        p, "--features", ("inception", "segmenter"),
        "FID/KID feature network: the field's Inception (default) or the dataset's segmenter "
        "(a domain FID for data without an Inception-meaningful domain; not comparable)",
    )
    p.add_argument("--inception", help="path of weights-inception-2015-12-05-6726825d.pth (default: cache)")
    p.add_argument(
        "--random_inception", action="store_true", help="random Inception: tests only, meaningless"
    )
    p.add_argument(
        "--segmenter",
        default="auto",
        help="segmenter registry name, 'auto' (the dataset's) or 'none'; NAME:PROTOCOL picks a protocol "
        "(deeplabv2_cocostuff:fullres, auto:fullres)",
    )
    p.add_argument("--segmenter_protocol", help="the segmenter's named protocol (default: its first)")
    p.add_argument(
        "--weights",
        "--segmenter_weights",
        dest="segmenter_weights",
        nargs="+",
        type=Path,
        help="the segmenter's weight files (UperNet: ENCODER DECODER); default: torch.hub's cache",
    )
    p.add_argument(
        "--expected_sha256",
        nargs="+",
        help="pin the segmenter's weight files (one SHA-256 or prefix per file); a mismatch is an error",
    )
    _one_of(
        p, "--latent", ("random", "encode"),
        "VAE models: seeded z ~ N(0, I) per image (default) or the real image's posterior",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ema", action="store_true", help="evaluate the EMA generator")
    p.add_argument("--kid_subsets", type=int, default=100)
    p.add_argument("--kid_subset_size", type=int, default=1000, help="capped at the number of images")
    p.add_argument(
        "--diversity_maps", type=int, default=0, help="diversity (multi-modal models) over the first N maps"
    )
    p.add_argument("--diversity_samples", type=int, default=4, help="samples per map (all pairs compared)")
    _one_of(
        p, "--diversity_features", ("alexnet", "segmenter"),
        "LPIPS (AlexNet: lpips_diversity, default) or the LPIPS-style distance in the segmenter's "
        "feature maps (seg_diversity: not LPIPS, for data or machines without the AlexNet file)",
    )
    p.add_argument("--lpips_weights", help="path of alexnet-owt-7be5be79.pth (default: torch.hub cache)")
    p.add_argument("--random_lpips", action="store_true", help="random AlexNet: tests only, meaningless")
    p.add_argument(
        "--metrics",
        nargs="+",
        default=[],
        metavar="NAME",
        help="newer metrics on top of FID/KID, mIoU and diversity: fd_dinov2 (DINOv2 ViT-L/14), cmmd "
        "(CLIP ViT-L/14@336px), precision_recall (k=3), density_coverage (k=5)",
    )
    p.add_argument(
        "--knn_features",
        choices=("inception", "dinov2", "clip", "segmenter"),
        default="dinov2",
        help="feature space of precision_recall and density_coverage (default dinov2)",
    )
    p.add_argument(
        "--resize",
        choices=("legacy_tf", "clean", "torch_bicubic"),
        help="how images reach the --metrics extractors (default: each one's own: legacy_tf for DINOv2 and "
        "Inception, torch_bicubic for CLIP); recorded in the metrics file",
    )
    _one_of(
        p, "--fid_resize", ("legacy_tf", "clean"),
        "how images reach the FID Inception: torch-fidelity's TF1 bilinear (default, as the published "
        "FIDs) or clean-fid's PIL bicubic (then rounded to 8 bits); recorded",
    )
    p.add_argument("--dinov2_weights", help="path of dinov2_vitl14_pretrain.pth (default: torch.hub cache)")
    p.add_argument("--clip_weights", help="path of the OpenAI ViT-L-14-336px.pt (default: torch.hub cache)")
    p.add_argument(
        "--random_extractors",
        action="store_true",
        help="random, reduced DINOv2 / CLIP networks for --metrics: tests only, meaningless",
    )
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument(
        "--dataset",
        help="dataset class to evaluate on (default: the run's train.dataset); with --images: whose label "
        "conventions and segmenter apply (default CustomFolder)",
    )
    add_bindings_argument(
        p, "extra bindings after the run's config, e.g. \"eval/CocoStuff.root = '/data/coco'\""
    )
    p.add_argument("--cache", type=Path, help="real-feature cache folder (default $CONDGEN_CACHE/stats)")
    add_sampler_args(p)
    return p


def _segmenter_options(args: argparse.Namespace) -> dict:
    """Only what was given, so gin bindings of `load_segmenter` are not overridden by None."""
    options = {
        "weights": tuple(args.segmenter_weights) if args.segmenter_weights else None,
        "expected_sha256": tuple(args.expected_sha256) if args.expected_sha256 else None,
        "protocol": args.segmenter_protocol,
    }
    return {k: v for k, v in options.items() if v is not None}


def _on_landscapes(args: argparse.Namespace) -> bool:
    """Whether the evaluated run trained on (or --dataset names) the synthetic landscapes."""
    if args.dataset:
        return "Landscape" in args.dataset
    for config in (args.source / "config.gin", args.source.parent / "config.gin"):
        if config.is_file():
            return "SyntheticLandscapes" in config.read_text()
    return False


def _extra_options(args: argparse.Namespace) -> dict:
    """The `default_metrics` keywords of the newer metrics (--metrics and their extractors)."""
    weights = {"dinov2": args.dinov2_weights, "clip": args.clip_weights}
    return {
        "extra": tuple(args.metrics),
        "knn_features": args.knn_features,
        "resize": args.resize,
        "random_extractors": args.random_extractors,
        "extractor_weights": {k: v for k, v in weights.items() if v},
        "fid_resize": args.fid_resize,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from condgen.eval.evaluate import evaluate, evaluate_images
    from condgen.weights import WeightsMismatchError, WeightsNotFoundError

    common = dict(
        metrics=None,
        segmenter=None if args.segmenter == "none" else args.segmenter,
        segmenter_options=_segmenter_options(args),
        features=args.features,
        inception_weights=args.inception,
        random_inception=args.random_inception,
        kid_subsets=args.kid_subsets,
        kid_subset_size=args.kid_subset_size,
        diversity_maps=args.diversity_maps,
        diversity_samples=args.diversity_samples,
        diversity_features=args.diversity_features,
        lpips_weights=args.lpips_weights,
        random_lpips=args.random_lpips,
        **_extra_options(args),
        batch_size=args.batch_size,
        cache=args.cache,
        progress=True,
    )
    try:
        if args.images is not None:
            if args.source is not None or args.labels is None:
                raise ValueError("--images takes --labels DIR (and --real DIR), not a run")
            record = evaluate_images(
                args.images,
                labels=args.labels,
                real=args.real,
                dataset=args.dataset or "CustomFolder",
                label_nc=args.label_nc,
                allow_missing=args.allow_missing,
                out=args.out,
                **common,
            )
        elif args.source is None:
            raise ValueError("give a run (RUN) or a folder of images (--images DIR --labels DIR)")
        else:
            source = args.source
            if (args.steps, args.sampler, args.guidance) != (None, None, None):  # checked against the model
                import torch

                from condgen.infer import SynthesisPipeline
                from condgen.infer.diffusion import sampler_options

                source = SynthesisPipeline.from_pretrained(
                    args.source, ema=args.ema, device="cuda" if torch.cuda.is_available() else "cpu")
                sampler_options(args, source.G)
            with sampler_overrides(steps=args.steps, method=args.sampler, guidance=args.guidance):
                record = evaluate(
                    source,
                    out=args.out,
                    split=args.split,
                    num_images=args.num_images,
                    dataset=args.dataset,
                    bindings=tuple(args.gin_bindings),
                    latent=args.latent,
                    seed=args.seed,
                    ema=args.ema,
                    **common,
                )
    except (
        WeightsNotFoundError,
        WeightsMismatchError,
        FileNotFoundError,
        ValueError,
        KeyError,
        CheckpointError,
    ) as e:
        print(f"error: {e}", file=sys.stderr)
        if isinstance(e, WeightsNotFoundError) and args.features == "inception" and _on_landscapes(args):
            print("On the synthetic landscapes FID/KID need no file: add --features segmenter (the landscape "
                  "segmenter's features; the first such evaluation trains and caches it, a few CPU minutes "
                  "with a progress bar), or fetch the Inception once: condgen weights fetch inception",
                  file=sys.stderr)
        return 2
    if record:  # the main process
        shown = {k: v for k, v in record["metrics"].items() if not k.endswith("per_class_iou")}
        print(json.dumps(shown, indent=1))
        print(record["protocol_line"])
        print(f"wrote {record['path']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
