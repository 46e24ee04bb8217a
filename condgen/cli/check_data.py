"""`python -m condgen check-data --gin FILE [...]`: validate the dataset a gin config trains on.

Builds the dataset bound to `train.dataset` (the same parse as training: files, then bindings), reads every
item through the training-time checks and prints counts, sizes, every bad file and a class histogram.
Exit code 0 when the data is clean, 1 when files are bad, 2 for configuration or layout errors.
"""

from __future__ import annotations

import argparse
import sys

import gin

from condgen.cli.gin_setup import ConfigError, add_bindings_argument, parse_gin
from condgen.data.errors import DataError
from condgen.data.validate import check_data


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m condgen check-data", description=__doc__.splitlines()[0])
    p.add_argument(
        "--gin",
        action="extend",
        nargs="+",
        default=[],
        metavar="FILE",
        required=True,
        help="gin file(s) naming the dataset, e.g. gin/spade_coco.gin",
    )
    add_bindings_argument(p, "e.g. \"COCO_ROOT = '/data/coco_stuff'\"")
    p.add_argument("--split", default=None, help="check this split instead of the dataset's default (train)")
    p.add_argument("--max_items", type=int, default=None, help="check only the first N items")
    p.add_argument("--num_workers", type=int, default=0, help="processes reading files in parallel")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        parse_gin(args.gin, args.gin_bindings)
        try:
            ref = gin.query_parameter("train.dataset")
        except ValueError:
            raise ConfigError(
                "no dataset is bound: the gin files must set `train.dataset = @SomeDataset`"
            ) from None
        make = ref.scoped_configurable_fn
        dataset = make(split=args.split) if args.split else make()
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = check_data(dataset, args.max_items, num_workers=args.num_workers)
    print(report.format())
    return 0 if report.ok else 1
