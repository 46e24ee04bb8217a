"""Synthesize photos from a folder of label maps with a trained run or a converted official checkpoint.

  python -m condgen synthesize --run runs/quickstart --labels my_maps/ --out results/quickstart
  python -m condgen synthesize --run runs/vae_run --labels my_maps/ --samples 4 --seed 1 --out results/m
  python -m condgen synthesize --run runs/vae_run --labels my_maps/ --style photo.jpg --out results/styled
  python -m condgen synthesize --run runs/oasis --labels my_maps/ --samples_per_map 4 --out results/o
  python -m condgen synthesize --run runs/oasis --labels my_maps/ --samples 4 --resample_class sky --out r/sky

Label maps are single-channel PNGs of the class ids the model was trained on (255 = don't care where the
dataset has that channel); other sizes of the model's aspect ratio are resized (nearest) to its size, with
one warning naming the sizes; another aspect ratio is refused unless --resize. Writes the official results
layout
(`images/input_label/`, `images/synthesized_image/`, `index.html`), `grid.png` (label | style | samples side
by side) and `synthesis.json`. The same --seed gives identical images.

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
        "--style", type=Path, help="style image, encoded by the VAE encoder (style-guided synthesis)"
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
    args = p.parse_args(argv)

    from condgen.eval.synthesize import synthesize_folder
    from condgen.infer import SynthesisPipeline

    try:
        pipe = SynthesisPipeline.from_pretrained(args.run, ema=args.ema, device=args.device)
        with output_dir(args.out), warnings.catch_warnings(record=True) as caught:  # warnings: one line each
            warnings.simplefilter("default")
            record = synthesize_folder(
                pipe, args.labels, args.out, samples=args.samples, resample_class=args.resample_class,
                style=args.style, seed=args.seed, instances_dir=args.instances, batch_size=args.batch_size,
                resize=args.resize,
            )
    except (FileNotFoundError, ValueError, NotImplementedError, CheckpointError, RunDirError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print(f"wrote {len(record['files'])} images for {record['maps']} label maps to {args.out}")
    print(f"  side by side: {args.out / 'grid.png'}   page: {args.out / 'index.html'}")
    return 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()

