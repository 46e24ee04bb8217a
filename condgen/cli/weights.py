"""`python -m condgen weights`: every weight file condgen knows, with its status (present / missing / hash).

Nothing is downloaded: a missing file's row says where to fetch it from and where to put it.
"""

from __future__ import annotations

import argparse
import json
import sys

from condgen.eval.weights import WeightFile, hub_checkpoint_dir, sha256_file


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the `weights` subcommand."""
    p = subparsers.add_parser(
        "weights", help="list every known weight file (segmenters, FID/DINOv2/CLIP, VGG19, LPIPS) with status"
    )
    p.add_argument("--no_hash", action="store_true", help="do not hash present files (faster)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
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


def known_weights() -> list[tuple[str, WeightFile]]:
    """Every weight file condgen knows: (user, file) for the metrics, the losses and the segmenters."""
    from condgen.eval.diversity import ALEXNET
    from condgen.eval.extractors import CLIP_VITL14_336, DINOV2_VITL14
    from condgen.eval.inception import INCEPTION
    from condgen.eval.segmenters import SEGMENTERS
    from condgen.losses.perceptual import VGG19_FILE, VGG19_URL

    vgg = WeightFile(
        "VGG19 perceptual loss: torchvision VGG19 (ImageNet, IMAGENET1K_V1)",
        (VGG19_FILE,),
        VGG19_URL,
        "dcbb9e9d",
        size="≈ 548 MB",
    )
    out = [("fid", INCEPTION), ("fd_dinov2", DINOV2_VITL14), ("cmmd", CLIP_VITL14_336), ("lpips", ALEXNET)]
    out.append(("vgg_loss", vgg))
    for spec in SEGMENTERS.values():
        out += [(f"segmenter:{spec.name}", w) for w in spec.weights]
    return out


def list_weights(*, hash_files: bool = True) -> list[dict]:
    """One row per known file: user, file, status ('present' / 'missing' / 'MISMATCH'), path, sha256, url.

    Args:
        hash_files: compute the SHA-256 of present files (memoised; a few seconds per GB).
    """
    rows = []
    for user, w in known_weights():
        path = w.find()
        row = {
            "user": user,
            "file": w.filenames[0],
            "what": w.what,
            "url": w.url,
            "size": w.size,
            "published_sha256": w.sha256,
            "path": str(path or hub_checkpoint_dir() / w.filenames[0]),
            "status": "missing",
            "sha256": None,
        }
        if path is not None:
            row["status"] = "present"
            if hash_files:
                row["sha256"] = sha256_file(path)
                if w.sha256 is not None and not row["sha256"].startswith(w.sha256.lower()):
                    row["status"] = "MISMATCH"
        rows.append(row)
    return rows
