"""`condgen weights`: every weight file condgen knows, with its status; `condgen weights fetch NAME... | all`.

`condgen weights` lists each declared file (present / missing / MISMATCH: a wrong hash), where it is or goes,
and the name to fetch it by. `condgen weights fetch` downloads into torch.hub's checkpoint folder, checked by
SHA-256 (see `condgen.fetch` for the mirror, resume and offline rules).
"""

from __future__ import annotations

import argparse
import json
import sys

from condgen.fetch import MIRROR_ENV, OFFLINE_ENVS, WeightsFetchError, fetch, source_url
from condgen.weights import WEIGHT_FILES, WeightFile, WeightsMismatchError, hub_checkpoint_dir, sha256_file


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the `weights` subcommand (and its `fetch` action)."""
    p = subparsers.add_parser(
        "weights",
        help="list every known weight file (segmenters, FID/DINOv2/CLIP, VGG19, LPIPS) with its status; "
        "`weights fetch NAME... | all` downloads them",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--no_hash", action="store_true", help="do not hash present files (faster)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="action")
    f = actions.add_parser(
        "fetch",
        help="download weight files by name (see `condgen weights`), or all of them",
        description=f"Download into {hub_checkpoint_dir()} with a SHA-256 check; an interrupted download "
        f"resumes. Offline mode: ${OFFLINE_ENVS[0]}=1 (or ${OFFLINE_ENVS[1]}=1).",
    )
    f.add_argument(
        "names", nargs="+", metavar="NAME", help="a name, group or file name from `condgen weights`, or 'all'"
    )
    f.add_argument(
        "--mirror", help=f"base URL or folder holding the files by file name (default ${MIRROR_ENV})"
    )
    f.add_argument("--force", action="store_true", help="download again even when a verified file is there")
    f.add_argument("--no_progress", action="store_true", help="no progress bar")
    f.set_defaults(func=run_fetch)
    return p


def run(args: argparse.Namespace) -> int:
    rows = list_weights(hash_files=not args.no_hash)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"weight folder: {hub_checkpoint_dir()} (torch.hub's checkpoints; $TORCH_HOME honoured)")
    for r in rows:
        print(f"{r['status']:8} {r['user']:32} {r['file']}")
        if r["status"] == "missing":
            size = f" ({r['size']})" if r["size"] else ""
            print(f"         from{size}: {r['url']}\n         put at: {r['path']}\n         or: {r['fetch']}")
        else:
            print(f"         {r['path']}\n         sha256 {r['sha256'] or '-'}")
            if r["status"] == "MISMATCH":
                print(f"         expected {r['published_sha256']}...; replace it: {r['fetch']} --force")
    return 0 if all(r["status"] != "MISMATCH" for r in rows) else 1


def run_fetch(args: argparse.Namespace) -> int:
    try:
        files = select(args.names)
    except KeyError as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 2
    failed = 0
    for w in files:
        print(f"{w.key}: {source_url(w, args.mirror)}", file=sys.stderr)
        try:
            path = fetch(w, mirror=args.mirror, force=args.force, progress=not args.no_progress)
        except (WeightsFetchError, WeightsMismatchError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        print(f"{w.key}: {path} (sha256 {sha256_file(path)})")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="condgen")
    add_parser(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(["weights", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


def known_weights() -> list[WeightFile]:
    """Every weight file condgen declares: those of the metrics, the losses, the segmenters and the released
    models."""
    import condgen.eval.diversity  # noqa: F401  (each module declares the files it loads)
    import condgen.eval.extractors  # noqa: F401
    import condgen.eval.inception  # noqa: F401
    import condgen.eval.segmenters  # noqa: F401
    import condgen.infer.pretrained  # noqa: F401  (released models, where one has a direct file)
    import condgen.losses.perceptual  # noqa: F401

    return list(WEIGHT_FILES.values())


def select(names: list[str]) -> list[WeightFile]:
    """The files named by fetch name, group or file name ('all': every one), in catalogue order."""
    known = known_weights()
    if "all" in names:
        return known
    out: list[WeightFile] = []
    for name in names:
        hits = [w for w in known if name in (w.key, w.group) or name in w.filenames]
        if not hits:
            choices = sorted({w.key for w in known} | {w.group for w in known if w.group})
            raise KeyError(f"no weight file is called {name!r}; known: {', '.join(choices)}, or 'all'")
        out += [w for w in hits if w not in out]
    return out


def list_weights(*, hash_files: bool = True) -> list[dict]:
    """One row per known file: user, name, file, status ('present' / 'missing' / 'MISMATCH'), path, sha256.

    Args:
        hash_files: compute the SHA-256 of present files (memoised; a few seconds per GB).
    """
    rows = []
    for w in known_weights():
        path = w.find()
        row = {
            "user": w.used_by or w.key,
            "name": w.key,
            "file": w.filenames[0],
            "what": w.what,
            "url": w.url,
            "size": w.size,
            "published_sha256": w.sha256,
            "path": str(path or w.destination()),
            "status": "missing",
            "sha256": None,
            "fetch": w.fetch_command,
        }
        if path is not None:
            row["status"] = "present"
            if hash_files:
                row["sha256"] = sha256_file(path)
                if not w.matches(row["sha256"]):
                    row["status"] = "MISMATCH"
        rows.append(row)
    return rows
