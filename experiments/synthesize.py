"""Synthesize photos from a folder of label maps with a trained run or a converted official checkpoint.

  python experiments/synthesize.py --run runs/quickstart --labels my_maps/ --out results/quickstart
  python experiments/synthesize.py --run runs/vae_run --labels my_maps/ --samples 4 --seed 1 --out results/m
  python experiments/synthesize.py --run runs/vae_run --labels my_maps/ --style photo.jpg --out results/styled

Label maps are single-channel PNGs of the class ids the model was trained on (255 = don't care where the
dataset has that channel); other sizes are resized (nearest) to the model's. Writes the official results
layout
(`images/input_label/`, `images/synthesized_image/`, `index.html`), `grid.png` (label | style | samples side
by side) and `synthesis.json`. The same --seed gives identical images.
"""

import sys
from pathlib import Path

# Run from a checkout without installing: the repository root is this file's parent folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from condgen.cli.synthesize import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
