"""`condgen export MODEL --format onnx|torchscript`: the generator as one file, label ids in, image out.

MODEL is anything `condgen.load` takes (a run directory, a `step_<N>` folder, a converted official or
`save_pretrained` folder, a registered name).

  condgen export runs/quickstart --format onnx                       # -> quickstart-64x64.onnx
  condgen export runs/oasis --format torchscript --ema --out oasis.pt
  condgen export runs/spade_cityscapes --format onnx --size 256x512 --batch 4

Inputs of the file: `labels` int64 (B, H, W) class ids (255 = don't care where the dataset has it),
`instance` int64 (B, H, W) for models with instance edges, `z` float32 (B, z_dim) for models with a latent
(VAE or OASIS's 3-D noise); output `image` float32 (B, 3, H, W) in [-1, 1]. Every export is run once by
onnxruntime (or torch.jit.load) and compared with the PyTorch generator; `<out>.json` beside the file
describes the inputs and records that comparison. ONNX needs `pip install 'condgen[export]'`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from condgen.rundir import CheckpointError


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size wants HxW, e.g. 256x512, got {text!r}") from None
    return h, w


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="condgen export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "run",
        help="what condgen.load takes: a run directory, a step_<N> folder, a converted official or "
        "save_pretrained folder, a registered name",
    )
    p.add_argument("--format", required=True, choices=("onnx", "torchscript"))
    p.add_argument(
        "--size", type=_size, help="HxW of the image (default: the trained size; not for VAE models)"
    )
    p.add_argument("--batch", type=int, default=1, help="batch size of the file's inputs (default 1)")
    p.add_argument("--out", type=Path, help="output file (default ./<run>-<H>x<W>.onnx|.pt)")
    p.add_argument("--ema", action="store_true", help="export the EMA generator of the run")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    from condgen.export import ExportError, export_run

    try:
        record = export_run(args.run, args.out, format=args.format, size=args.size, batch=args.batch,
                            ema=args.ema)
    except (ExportError, CheckpointError, FileNotFoundError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for note in record["notes"]:
        print(f"note: {note}", file=sys.stderr)
    inputs = ", ".join(f"{i['name']} {i['dtype']} {tuple(i['shape'])}" for i in record["inputs"])
    parity = record["parity"]
    print(f"wrote {record['path']} ({args.format}): {inputs} -> image float32 "
          f"{tuple(record['output']['shape'])}")
    print(f"checked: max |exported - PyTorch| = {parity['max_abs_diff']:.3g} (output scale "
          f"{parity['scale']:.3g}); description in {record['path']}.json")
    return 0
