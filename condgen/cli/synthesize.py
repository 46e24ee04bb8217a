"""Synthesize photos from a folder of label maps with a trained run or a converted official checkpoint.

  python -m condgen synthesize --run runs/quickstart --labels my_maps/ --out results/quickstart
  python -m condgen synthesize --run runs/vae_run --labels my_maps/ --samples 4 --seed 1 --out results/m
  python -m condgen synthesize --run runs/vae_run --labels my_maps/ --style photo.jpg --out results/styled
  python -m condgen synthesize --run runs/sean --labels my_maps/ --style beach.jpg \
      --region_style sky=sunset.jpg --region_style water=look.safetensors --out results/regions
  python -m condgen synthesize --run runs/oasis --labels my_maps/ --samples_per_map 4 --out results/o
  python -m condgen synthesize --run runs/oasis --labels my_maps/ --samples 4 --resample_class sky --out r/sky

Label maps are single-channel PNGs of the class ids the model was trained on (255 = don't care where the
dataset has that channel); other sizes of the model's aspect ratio are resized (nearest) to its size, with
one warning naming the sizes; another aspect ratio is refused unless --resize. Writes the official results
layout
(`images/input_label/`, `images/synthesized_image/`, `index.html`), `grid.png` (label | style | samples side
by side) and `synthesis.json`. The same --seed gives identical images. --out must be new, empty or a
folder condgen wrote (`.condgen-output`): your own files are never overwritten, and a failure removes what
it wrote.

Multi-modal sampling needs a latent: a VAE (SPADE with use_vae) or 3-D noise (OASIS). --samples N (alias
--samples_per_map) writes N images per map (`<map>_s00.png` ...), each with its own latent / noise vector.
--resample_class C (3-D noise only: OASIS's local resampling) keeps sample 0's noise everywhere except in
class C's region (an id, or a class name of the dataset), where samples 1..N-1 draw new noise.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from condgen.infer.diffusion import add_sampler_args
from condgen.rundir import CheckpointError, RunDirError, output_dir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--run",
        required=True,
        help="run directory (its latest checkpoint), a step_<N> folder, a converted official or "
        "save_pretrained folder, or a pretrained name (condgen.load: 'spade-coco', a Hugging Face repo id)",
    )
    p.add_argument("--labels", required=True, type=Path, help="folder of label-map PNGs")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--samples",
        "--samples_per_map",
        dest="samples",
        type=int,
        default=1,
        help="images per label map, each with its own latent (VAE) or noise vector (3-D noise, OASIS)",
    )
    p.add_argument(
        "--resample_class",
        help="local resampling (3-D noise models): new noise only inside this class's region (a class id "
        "or name) for samples 1..N-1; sample 0 is the original",
    )
    p.add_argument(
        "--style",
        type=Path,
        help="style image: a VAE model encodes it (style-guided synthesis); a SEAN model reads its regions "
        "with each label map, or takes a .safetensors style file",
    )
    p.add_argument(
        "--region_style",
        action="append",
        default=[],
        metavar="CLASS=FILE",
        help="SEAN models: this class's style from a photo or a .safetensors style file, e.g. "
        "--region_style sky=sunset.jpg (repeatable)",
    )
    p.add_argument(
        "--save_style",
        type=Path,
        help="SEAN models: also write the style matrix used for the first label map to this .safetensors "
        "file (reuse it with --style)",
    )
    p.add_argument("--seed", type=int, default=0, help="latent seed; the same seed gives the same images")
    p.add_argument(
        "--instances", type=Path, help="instance maps (same file names) for models with instance edges"
    )
    p.add_argument("--resize", action="store_true",
                   help="stretch label maps of another aspect ratio than the model's (refused otherwise)")
    p.add_argument("--ema", action="store_true", help="use the EMA generator of the run")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    add_sampler_args(p)
    args = p.parse_args(argv)

    from condgen.eval.synthesize import synthesize_folder
    from condgen.infer import SynthesisPipeline
    from condgen.infer.diffusion import sampler_options, sampler_overrides

    try:
        pipe = SynthesisPipeline.from_pretrained(args.run, ema=args.ema, device=args.device)
        sampler = sampler_options(args, pipe.G)
        with (output_dir(args.out), sampler_overrides(**sampler),  # a new or condgen folder, kept if done
              warnings.catch_warnings(record=True) as caught):  # warnings: printed as one line each below
            warnings.simplefilter("default")
            record = synthesize_folder(
                pipe, args.labels, args.out, samples=args.samples, resample_class=args.resample_class,
                style=args.style, region_styles=_region_styles(args.region_style), seed=args.seed,
                instances_dir=args.instances, batch_size=args.batch_size, resize=args.resize,
            )
            if args.save_style is not None:
                _save_style(pipe, args.labels, args.style, args.region_style, args.save_style)
    except (FileNotFoundError, ValueError, NotImplementedError, CheckpointError, RunDirError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print(f"wrote {len(record['files'])} images for {record['maps']} label maps to {args.out}")
    print(f"  side by side: {args.out / 'grid.png'}   page: {args.out / 'index.html'}")
    return 0


def _region_styles(items: list[str]) -> dict[str, Path] | None:
    """['sky=a.jpg', ...] -> {'sky': Path('a.jpg')}; a class is an id or a class name."""
    out = {}
    for item in items:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise ValueError(f"--region_style {item!r}: write CLASS=FILE, e.g. --region_style sky=sunset.jpg")
        out[name] = Path(file)
    return out or None


def _save_style(pipe, labels: Path, style, region_style: list[str], path: Path) -> None:
    """The style matrix of the first label map, as composed for the images, to a style file."""
    from condgen.data.io import LABEL_EXTENSIONS, list_files
    from condgen.infer.region_styles import region_inputs
    from condgen.networks.region_styles import compose_styles, save_styles

    if pipe.latent.name != "region_styles":
        raise ValueError("--save_style: only region-style (SEAN) models have a style matrix to save")
    _, ids, _ = pipe.read_labels([list_files(labels, LABEL_EXTENSIONS)[0]], None)
    default, regions = region_inputs(pipe, style, _region_styles(region_style))
    styles = compose_styles(pipe.G, pipe.encode(ids), style=default, region_styles=regions)
    save_styles(path, styles[0], names=pipe.dataset.class_names)
    print(f"wrote the style of the first label map to {path}")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()

