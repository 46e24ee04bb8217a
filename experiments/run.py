"""Train a condgen GAN from gin files.

    accelerate launch experiments/run.py --gin gin/spade_coco.gin [--gin FILE ...] \\
        [--gin_bindings 'train.batch_size = 4' ...] [--run_dir DIR] [--resume]
    python experiments/run.py --gin gin/quickstart.gin          # one process, no launcher needed

Thin on purpose: flags, gin parsing and training live in `condgen.cli.gin_setup` and `condgen.train`.
"""

import os
import sys
from pathlib import Path

# Before torch is imported: transparent huge pages for torch's CPU allocations. On CPU most of a small step's
# backward is first writes into fresh memory (page faults); this made CPU steps 1.4-1.6x faster
# (docs/performance.md). No effect on GPU memory; set THP_MEM_ALLOC_ENABLE=0 to opt out.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

# Run from a checkout without installing: the repository root is this file's parent folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from condgen.cli.gin_setup import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
