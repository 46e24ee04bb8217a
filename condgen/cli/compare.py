"""Compare runs: a markdown + HTML report with the metrics table, plots and side-by-side samples.

  python -m condgen eval runs/spade --features segmenter      # evaluate each run first (any protocol)
  python -m condgen eval runs/ccfpse --features segmenter
  python -m condgen compare runs/spade runs/ccfpse --out docs/results/mine

Writes OUT/report.md, OUT/report.html, OUT/metrics.png (metrics per evaluated checkpoint), OUT/losses.png and
OUT/samples.png (label | real | each run, same validation label maps and seed). The table shows each run's
latest evaluation, parameter counts, training and generation images/s, and the protocol line; runs evaluated
under different protocols are flagged as not comparable. OUT must be new, empty or a folder condgen wrote
(`.condgen-output`); a failed comparison removes what it wrote.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from condgen.rundir import CheckpointError, RunDirError, output_dir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run directories (or converted official folders)")
    p.add_argument("--out", required=True, type=Path, help="report folder")
    p.add_argument("--names", nargs="+", help="column names (default: the run folder names)")
    p.add_argument("--split", default="val", help="which evaluations to read (eval/<split>_step<N>_*.json)")
    p.add_argument("--features", choices=("inception", "segmenter"), help="which evaluations (default: any)")
    p.add_argument("--maps", type=int, default=6, help="label maps in the sample grid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--title", default="condgen comparison")
    p.add_argument("--name", default="report", help="file stem: OUT/<name>.md, OUT/<name>.html, <name>_*.png")
    p.add_argument("--notes", type=Path, help="a text/markdown file placed under the title")
    args = p.parse_args(argv)
    if args.names and len(args.names) != len(args.runs):
        p.error(f"--names has {len(args.names)} entries for {len(args.runs)} runs")

    from condgen.report import compare

    notes = args.notes.read_text() if args.notes else ""
    try:
        with output_dir(args.out):  # an empty, new or condgen folder; nothing left behind on failure
            md = compare(
                args.runs,
                args.out,
                names=args.names,
                split=args.split,
                features=args.features,
                maps=args.maps,
                seed=args.seed,
                title=args.title,
                notes=notes,
                name=args.name,
            )
    except (FileNotFoundError, ValueError, CheckpointError, RunDirError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {md} and {md.with_suffix('.html')}")
    return 0

