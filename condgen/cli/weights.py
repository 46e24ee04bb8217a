"""`python -m condgen weights`: every weight file condgen knows, with its status (present / missing / hash).

Nothing is downloaded: a missing file's row says where to fetch it from and where to put it.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the `weights` subcommand."""
    p = subparsers.add_parser(
        "weights", help="list every known weight file (segmenters, Inception, VGG19, LPIPS) with its status"
    )
    p.add_argument("--no_hash", action="store_true", help="do not hash present files (faster)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from condgen.eval.weights import hub_checkpoint_dir, list_weights

    rows = list_weights(hash_files=not args.no_hash)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"weight folder: {hub_checkpoint_dir()} (torch.hub's checkpoints; $TORCH_HOME honoured)")
    for r in rows:
        digest = r["sha256"] or "-"
        print(f"{r['status']:8} {r['user']:32} {r['file']}")
        if r["status"] == "missing":
            size = f" ({r['size']})" if r["size"] else ""
            print(f"         fetch{size}: {r['url']}\n         put at: {r['path']}")
        else:
            print(f"         {r['path']}\n         sha256 {digest}")
    return 0 if all(r["status"] != "MISMATCH" for r in rows) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m condgen")
    add_parser(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(["weights", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)
