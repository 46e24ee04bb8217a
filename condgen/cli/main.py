"""`python -m condgen <command>`.

blocks, weights, convert, check-data, train, eval, synthesize, compare, leaderboard, paint, export.
"""

from __future__ import annotations

import argparse
import sys

from condgen.registry import KINDS, format_catalogue, list_blocks


def _blocks(args: argparse.Namespace) -> int:
    entries = list_blocks(args.kind, args.pattern)
    if not entries:
        print(f"no registered block matches kind={args.kind!r} pattern={args.pattern!r}", file=sys.stderr)
        return 1
    print(format_catalogue(entries))
    return 0


# The sub-tools with their own parsers, in --help order: command -> (condgen.<module> whose `main(argv)`
# runs it, help)
_TOOLS = {
    "convert": ("convert.__main__", "convert official checkpoints (see: python -m condgen convert --help)"),
    "check-data": ("cli.check_data", "validate a dataset end to end (see: check-data --help)"),
    "train": ("cli.train", "train from gin files (same as experiments/run.py)"),
    "eval": ("cli.eval", "FID/KID/mIoU of a run with the documented protocol (see: eval --help)"),
    "synthesize": ("cli.synthesize", "photos from label-map PNGs (same as experiments/synthesize.py)"),
    "compare": ("cli.compare", "a report comparing evaluated runs (same as experiments/compare.py)"),
    "leaderboard": ("cli.leaderboard", "one table of scored runs / folders beside the papers' numbers"),
    "paint": ("cli.paint", "paint a label map in the browser, get the photo (see: paint --help)"),
    "export": ("cli.export", "the generator as an ONNX or TorchScript file (see: export --help)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m condgen", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("blocks", help="list registered blocks with their gin names and constructor defaults")
    b.add_argument("kind", nargs="?", choices=KINDS, help="only this kind")
    b.add_argument("pattern", nargs="?", help="shell wildcard on the name, e.g. '*Generator'")
    b.set_defaults(func=_blocks)

    from condgen.cli import weights as weights_cli

    weights_cli.add_parser(sub)

    # Sub-tools keep their own parsers: listed here for --help, handed the rest of the command line untouched.
    for name, (_, help) in _TOOLS.items():
        sub.add_parser(name, help=help, add_help=False)
    if argv and argv[0] in _TOOLS:
        import importlib

        return importlib.import_module(f"condgen.{_TOOLS[argv[0]][0]}").main(argv[1:])
    args = p.parse_args(argv)
    return args.func(args)
