"""`python -m condgen leaderboard METRICS_FILES... --out DIR`: one table of every scored run and folder.

  condgen eval runs/spade --out m/spade.json
  condgen eval --images results/spade_ade/ --labels ADE/annotations/validation --real ADE/images/validation \
      --dataset ADE20K --out m/official.json
  condgen leaderboard m/*.json --out docs/results/board

Writes DIR/leaderboard.md and DIR/leaderboard.html: the re-scored rows under one protocol (a mix is refused
unless --allow_mixed), then the papers' reported numbers for the same datasets, marked "reported, own
protocol". DIR must be new, empty, or a folder condgen wrote before.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from condgen.rundir import RunDirError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m condgen leaderboard",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", type=Path, help="metrics JSON files written by condgen eval")
    p.add_argument("--out", required=True, type=Path, help="output folder (new, empty, or condgen's)")
    p.add_argument("--names", nargs="+", help="row names (default: the run or results folder names)")
    p.add_argument("--title", default="condgen leaderboard")
    p.add_argument("--allow_mixed", action="store_true", help="accept several protocols (flagged per row)")
    p.add_argument("--no_reported", action="store_true", help="leave out the papers' reported numbers")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    from condgen.leaderboard import leaderboard

    try:
        md = leaderboard(
            args.files,
            args.out,
            names=args.names,
            title=args.title,
            allow_mixed=args.allow_mixed,
            reported=not args.no_reported,
        )
    except (FileNotFoundError, ValueError, RunDirError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {md} and {md.with_suffix('.html')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
