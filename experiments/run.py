"""Train a condgen GAN from gin files.

    accelerate launch experiments/run.py --gin gin/spade_coco.gin [--gin FILE ...] \\
        [--gin_bindings 'train.batch_size = 4' ...] [--run_dir DIR] [--resume]
    python experiments/run.py --gin gin/quickstart.gin          # one process, no launcher needed

Thin on purpose: flags in `condgen.cli.train`, gin parsing in `condgen.cli.gin_setup`, training in
`condgen.train`.
"""

import sys
from pathlib import Path

# Run from a checkout without installing: the repository root is this file's parent folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from condgen.cli.train import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
