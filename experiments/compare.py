"""Compare runs: a markdown + HTML report with the metrics table, plots and side-by-side samples.

  python -m condgen eval runs/spade --features segmenter      # evaluate each run first (any protocol)
  python -m condgen eval runs/ccfpse --features segmenter
  python experiments/compare.py runs/spade runs/ccfpse --out docs/results/mine

Writes OUT/report.md, OUT/report.html, OUT/metrics.png (metrics per evaluated checkpoint), OUT/losses.png and
OUT/samples.png (label | real | each run, same validation label maps and seed). The table shows each run's
latest evaluation, parameter counts, training and generation images/s, and the protocol line; runs evaluated
under different protocols are flagged as not comparable.
"""

import sys
from pathlib import Path

# Run from a checkout without installing: the repository root is this file's parent folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from condgen.cli.compare import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
