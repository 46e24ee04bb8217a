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

    sub.add_parser(
        "convert", help="convert official checkpoints (see: python -m condgen convert --help)", add_help=False
    )
    sub.add_parser(
        "check-data", help="validate a dataset end to end (see: check-data --help)", add_help=False
    )
    sub.add_parser("train", help="train from gin files (same as experiments/run.py)", add_help=False)
    sub.add_parser("eval", help="FID/KID/mIoU of a run with the documented protocol (see: eval --help)",
                   add_help=False)
    sub.add_parser("synthesize", help="photos from label-map PNGs (same as experiments/synthesize.py)",
                   add_help=False)
    sub.add_parser("compare", help="a report comparing evaluated runs (same as experiments/compare.py)",
                   add_help=False)
    sub.add_parser("leaderboard", help="one table of scored runs / folders beside the papers' numbers",
                   add_help=False)
    sub.add_parser("paint", help="paint a label map in the browser, get the photo (see: paint --help)",
                   add_help=False)
    sub.add_parser("export", help="the generator as an ONNX or TorchScript file (see: export --help)",
                   add_help=False)

    # Sub-tools keep their own parsers: hand them the rest of the command line untouched.
    tools = {"eval": "eval", "convert": "convert", "check-data": "check_data", "train": "train",
             "synthesize": "synthesize", "compare": "compare", "paint": "paint", "leaderboard": "leaderboard",
             "export": "export"}
    if argv and argv[0] in tools:
        import importlib

        module = "condgen.convert.__main__" if argv[0] == "convert" else f"condgen.cli.{tools[argv[0]]}"
        return importlib.import_module(module).main(argv[1:])
    args = p.parse_args(argv)
    return args.func(args)
