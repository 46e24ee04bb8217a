"""Export a trained generator to ONNX or TorchScript at a fixed image size: label ids in, image out.

The exported graph (`LabelsToImage`) takes what a user has, not the network's internal input:
- `labels`: int64 (B, H, W) class ids, 255 = don't care where the dataset has that channel; the one-hot
  map (and the don't-care mapping) is computed inside the graph. Ids outside the model's classes give an
  all-zero column, as no class (the graph cannot raise).
- `instance`: int64 (B, H, W) instance ids, only for models trained with instance edges (computed inside).
- `z`: float32 (B, z_dim), only for models with a latent: the VAE's z (N(0, I) for random styles, the
  encoder's mu for a given style) or OASIS's 3-D noise vector (replicated over the map, as in training).
  Randomness stays outside the graph, so a file gives the same image for the same inputs everywhere.
- output `image`: float32 (B, 3, H, W) in [-1, 1]. Batch and image size are fixed at export (`batch`,
  `size`): with a free batch axis the exporter loses the channel count of the VAE's reshaped latent.

What changes on the way out, on a copy of the generator (the caller's network is left as it is):
spectral-norm parametrizations are folded into plain weights (eval mode computes the same W / sigma from
the stored u, v); conditional depthwise convolutions (CC-FPSE) use the plain `reference` formulation, not
the custom autograd or Triton paths; label-sparse convolutions are switched to the dense path, since their
layout is found from the data at run time and a trace would freeze it (the numbers agree to fp32 round-off).
Every export is then run by onnxruntime / `torch.jit.load` and compared with the PyTorch generator; the
largest difference is recorded in the JSON written beside the file.

ONNX uses the TorchScript-based exporter (`torch.onnx.export(dynamo=False)`, opset 18): the same graph as
the TorchScript file, and an export in seconds (the torch.export-based one took 4-5x longer on these
networks). An op without an ONNX or TorchScript form is an `ExportError` naming the op and the block.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from condgen.blocks.cond_conv import CondDepthwiseConv
from condgen.blocks.noise import NoiseCondition
from condgen.data.labels import get_edges
from condgen.data.spec import DataSpec
from condgen.ops.label_conv import AUTO_MIN_LABELS, label_sparse_mode, use_label_sparse

log = logging.getLogger("condgen.export")
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
OPSET = 18
TOLERANCE = 1e-4  # of the output's scale (max |image|), onnxruntime / TorchScript vs PyTorch


class ExportError(RuntimeError):
    """The generator cannot be written in the asked format; the message names the op and the block."""


class LabelsToImage(nn.Module):
    """The exported graph: labels (and instance ids, and z, where the model takes them) -> image.

    Args:
        G: the generator (a plain copy: `exportable_copy`).
        spec: the dataset's shapes (classes, don't care, instance edges).
    """

    def __init__(self, G: nn.Module, spec: DataSpec) -> None:
        super().__init__()
        self.G, self.spec = G, spec
        self.z_dim = latent_dim(G)
        nc = spec.label_nc + int(spec.contain_dontcare_label)
        self.register_buffer("classes", torch.arange(nc).view(1, nc, 1, 1), persistent=False)

    @property
    def input_names(self) -> list[str]:
        return ["labels"] + ["instance"] * self.spec.instance_edges + ["z"] * (self.z_dim is not None)

    def forward(self, labels: Tensor, *rest: Tensor) -> Tensor:
        if self.spec.contain_dontcare_label:  # the datasets' 255 is the don't-care channel, `label_nc`
            labels = torch.where(labels == 255, torch.full_like(labels, self.spec.label_nc), labels)
        seg = (labels[:, None] == self.classes).float()  # one-hot by comparison: exact, in every runtime
        rest = list(rest)
        if self.spec.instance_edges:
            seg = torch.cat([seg, get_edges(rest.pop(0)[:, None])], dim=1)
        return self.G(seg, rest.pop(0) if self.z_dim is not None else None)


def latent_dim(G: nn.Module) -> int | None:
    """z_dim of the generator's latent input (VAE z or 3-D noise vector), None when it takes none."""
    if getattr(G, "use_vae", False):
        return int(G.z_dim)
    condition = getattr(G, "condition", None)
    return int(condition.z_dim) if isinstance(condition, NoiseCondition) else None


def exportable_copy(G: nn.Module, size: tuple[int, int] | None = None) -> tuple[nn.Module, list[str]]:
    """A copy of G in eval mode with plain weights and traceable ops; the notes say what changed.

    Args:
        size: (H, W) of the exported image when not the trained one (fully convolutional generators only).
    """
    G = copy.deepcopy(G).cpu().eval()  # a file is device-free; onnxruntime checks it on the CPU
    notes = []
    folded = [m for m in G.modules() if parametrize.is_parametrized(m)]
    for m in folded:  # by hand: torch's remove_parametrizations edits the class the original shares
        values = {name: getattr(m, name).detach().clone() for name in m.parametrizations}
        plain = type(m).__bases__[0]
        del m.parametrizations
        m.__class__ = plain
        for name, value in values.items():
            setattr(m, name, nn.Parameter(value, requires_grad=False))
    if folded:
        notes.append(f"spectral norm folded into the weights of {len(folded)} layers (eval-mode W / sigma)")
    cdw = [m for m in G.modules() if isinstance(m, CondDepthwiseConv) and m.impl != "reference"]
    for m in cdw:
        m.impl = "reference"
    if cdw:
        notes.append(f"{len(cdw)} conditional depthwise convolutions use the reference (unfold) formulation")
    if size is not None:
        _resize(G, size)
    return G, notes


def _resize(G: nn.Module, size: tuple[int, int]) -> None:
    h, w = size
    if getattr(G, "use_vae", False):
        raise ExportError(
            f"--size {h}x{w}: this generator maps its VAE latent to a fixed {G.sh}x{G.sw} grid (a Linear "
            "layer), so it only makes its trained size; export without --size"
        )
    factor = 2 ** sum(stage.upsample for stage in G.schedule)
    if h % factor or w % factor:
        raise ExportError(f"--size {h}x{w}: both sides must be multiples of {factor} (its x2 upsamplings)")
    G.sh, G.sw = h // factor, w // factor


def example_inputs(graph: LabelsToImage, size: tuple[int, int], *, batch: int = 1, seed: int = 0) -> tuple:
    """Seeded inputs of the graph: random label ids (don't care included), instances, latent."""
    g = torch.Generator().manual_seed(seed)
    spec, (h, w) = graph.spec, size
    labels = torch.randint(0, spec.label_nc, (batch, h, w), generator=g)
    if spec.contain_dontcare_label:
        labels[:, : h // 4, : w // 4] = 255
    out = [labels]
    if spec.instance_edges:
        out.append(torch.randint(0, 4, (batch, h, w), generator=g) * 1000 + labels)
    if graph.z_dim is not None:
        out.append(torch.randn(batch, graph.z_dim, generator=g))
    return tuple(out)


@contextlib.contextmanager
def _dense_labels(notes: list[str], channels: int) -> Iterator[None]:
    mode = label_sparse_mode()
    if mode == "on" or (mode == "auto" and channels >= AUTO_MIN_LABELS):
        notes.append(
            f"label-sparse convolutions (label_sparse.mode = {mode!r}) switched to the dense path: their "
            "layout is found from the data at run time, which a traced graph cannot do (same numbers to "
            "fp32 round-off)"
        )
        log.info("export: %s", notes[-1])
    with use_label_sparse("off"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings on shape checks, deprecation notes of the tracer
        yield


def export_generator(
    G: nn.Module,
    spec: DataSpec,
    out: str | Path,
    *,
    format: str = "onnx",
    size: tuple[int, int] | None = None,
    batch: int = 1,
    check: bool = True,
    meta: dict | None = None,
) -> dict:
    """Write `G` as `format` ('onnx' | 'torchscript') at `size` (default: the trained size); returns the
    record also written as `<out>.json` (inputs, outputs, notes, parity).

    Args:
        batch: the batch size B of every input and of the image.
        check: run the written file and compare it with the PyTorch generator (ExportError when it differs
            by more than TOLERANCE of the output scale).
        meta: provenance to record (the run, the checkpoint, EMA or not).
    """
    if format not in FORMATS:
        raise ValueError(f"export format must be one of {', '.join(FORMATS)}, got {format!r}")
    out = Path(out)
    size = tuple(size or spec.size)
    plain, notes = exportable_copy(G, size if size != spec.size else None)
    graph = LabelsToImage(plain, spec).eval()
    inputs = example_inputs(graph, size, batch=batch)
    _check_call(graph, inputs, size)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with torch.no_grad(), _dense_labels(notes, spec.semantic_nc):
        if format == "onnx":
            _write_onnx(graph, inputs, tmp)
        else:
            _write_torchscript(graph, inputs, tmp)
    record = {
        "format": format,
        "file": out.name,
        "size": list(size),
        "inputs": _describe_inputs(graph, size, batch),
        "output": {"name": "image", "dtype": "float32", "shape": [batch, 3, *size], "range": [-1, 1]},
        "spec": {k: getattr(spec, k) for k in ("label_nc", "contain_dontcare_label", "instance_edges")},
        "generator": type(G).__name__,
        "notes": notes,
        "torch": torch.__version__,
        **({"opset": OPSET} if format == "onnx" else {}),
        **(meta or {}),
    }
    if check:
        record["parity"] = _check(G, spec, graph, tmp, format, size, batch)
    os.replace(tmp, out)
    out.with_name(out.name + ".json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def _check_call(graph: LabelsToImage, inputs: tuple, size: tuple[int, int]) -> None:
    """The generator is called as `G(seg, z)` and returns the image: say so when it does not."""
    want = (inputs[0].shape[0], 3, *size)
    try:
        with torch.no_grad(), use_label_sparse("off"):
            image = graph(*inputs)
    except Exception as e:
        raise ExportError(
            f"cannot export {type(graph.G).__name__}: calling it as G(seg, z) -> image failed ({e}); "
            "export knows generators with that call (SPADE, CC-FPSE, OASIS and their variants)"
        ) from e
    if not isinstance(image, Tensor) or tuple(image.shape) != want:
        got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ExportError(
            f"cannot export {type(graph.G).__name__}: G(seg, z) gave {got}, not an image of shape {want}"
        )


def _describe_inputs(graph: LabelsToImage, size: tuple[int, int], batch: int) -> list[dict]:
    ids = "class ids" + (f", 255 = don't care (channel {graph.spec.label_nc})"
                         if graph.spec.contain_dontcare_label else "")
    meaning = {"labels": ids, "instance": "instance ids (their boundaries are the edge channel)",
               "z": "VAE latent (N(0, I), or the encoder's mu)" if getattr(graph.G, "use_vae", False)
               else "3-D noise vector, replicated over the map (N(0, I))"}
    return [{"name": n, "dtype": "float32" if n == "z" else "int64",
             "shape": [batch, graph.z_dim] if n == "z" else [batch, *size], "meaning": meaning[n]}
            for n in graph.input_names]


def _write_onnx(graph: LabelsToImage, inputs: tuple, path: Path) -> None:
    names = graph.input_names
    try:
        with _no_stdout():
            torch.onnx.export(graph, inputs, str(path), dynamo=False, opset_version=OPSET, input_names=names,
                              output_names=["image"])
    except Exception as e:  # the exporter's own errors name an op, never the block
        path.unlink(missing_ok=True)
        traced = _trace(graph, inputs)
        _refuse_randomness(graph, traced)  # the likelier cause, and the clearer message (SEAN's noise)
        op = re.search(r"operator '([\w:.]+)'", str(e))
        raise ExportError(
            f"cannot export {type(graph.G).__name__} to ONNX (opset {OPSET}): "
            + (_blame(graph, traced, op.group(1), "has no ONNX form") if op else str(e).splitlines()[0])
        ) from e
    import onnx

    if any(n.op_type in _ONNX_RANDOM for n in onnx.load(str(path)).graph.node):
        path.unlink()
        _refuse_randomness(graph, _trace(graph, inputs))


@contextlib.contextmanager
def _no_stdout() -> Iterator[None]:
    """Silence file descriptor 1: on an error the exporter's C++ log prints the whole graph there
    (thousands of lines) before raising, whatever its `verbose`."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _write_torchscript(graph: LabelsToImage, inputs: tuple, path: Path) -> None:
    traced = torch.jit.trace(graph, inputs, check_trace=False)
    _refuse_randomness(graph, traced)
    python = [n for n in traced.inlined_graph.nodes() if n.kind() == "prim::PythonOp"]
    if python:  # a custom autograd.Function or Python call: it cannot be saved, say where it is
        node = python[0]
        raise ExportError(
            f"cannot export {type(graph.G).__name__} to TorchScript: the Python function "
            f"{node.pyname()!r} " + _where(graph, node) + "; give the block a plain-tensor path for export"
        )
    torch.jit.save(traced, str(path))


_TORCH_RANDOM = {f"aten::{op}" for op in ("randn", "randn_like", "rand", "rand_like", "normal", "normal_",
                                          "uniform_", "bernoulli", "bernoulli_", "randint", "multinomial")}
_ONNX_RANDOM = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli",
                "Multinomial"}


def _refuse_randomness(graph: LabelsToImage, traced: Any) -> None:
    drawn = [n for n in traced.inlined_graph.nodes() if n.kind() in _TORCH_RANDOM]
    if drawn:
        raise ExportError(
            f"cannot export {type(graph.G).__name__}: it draws random numbers inside the network "
            f"({drawn[0].kind()} {_where(graph, drawn[0])}), so the file would give another image at every "
            "call and no parity could be checked; export takes the latent as an input (VAE z, 3-D noise) "
            "and knows no input for this one"
        )


def _trace(graph: LabelsToImage, inputs: tuple) -> Any:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(graph, inputs, check_trace=False)


def _blame(graph: LabelsToImage, traced: Any, op: str, what: str) -> str:
    """'operator X (in block P, class C, file:line) has no ONNX form' from a trace of the graph."""
    for node in traced.inlined_graph.nodes():
        if node.kind() == op:
            return f"operator {op} {_where(graph, node)} {what}; give that block an exportable path"
    return f"operator {op} {what}"


def _where(graph: LabelsToImage, node: Any) -> str:
    """'(in block G.head_0.conv_0, Conv2d, file.py:12)' from a traced node's scope and source range."""
    path = node.scopeName().split("/")[-1].removeprefix("__module.") if node.scopeName() else ""
    modules = dict(graph.named_modules())
    kind = type(modules[path]).__name__ if path in modules else "?"
    source = node.sourceRange().splitlines()[0] if node.sourceRange() else ""
    return f"(in block {path or 'the graph'}, {kind}" + (f", {source})" if source else ")")


def _check(G: nn.Module, spec: DataSpec, graph: LabelsToImage, path: Path, format: str,
           size: tuple[int, int], batch: int) -> dict:
    """Max |exported - PyTorch| on other seeded inputs than the ones traced with."""
    inputs = example_inputs(graph, size, batch=batch, seed=1)
    original = copy.deepcopy(G).cpu().eval()  # as trained: spectral norm, its op path, label-sparse switch
    for m in original.modules():  # ... but on the CPU, where Triton's CUDA kernels do not run
        if isinstance(m, CondDepthwiseConv) and m.impl != "reference":
            m.impl = "lean"
    if size != spec.size:
        _resize(original, size)
    with torch.no_grad():
        reference = LabelsToImage(original, spec)(*inputs)
    got = run_exported(path, inputs, format)
    diff = float((got - reference).abs().max())
    scale = float(reference.abs().max())
    if not diff <= TOLERANCE * max(scale, 1e-12):
        path.unlink(missing_ok=True)
        raise ExportError(
            f"the exported {format} file differs from the PyTorch generator by {diff:.3g} "
            f"(output scale {scale:.3g}, tolerance {TOLERANCE} of it); nothing was written"
        )
    return {"max_abs_diff": diff, "scale": scale}


def run_exported(path: str | Path, inputs: tuple, format: str | None = None) -> Tensor:
    """Run an exported file on CPU (onnxruntime for .onnx, `torch.jit.load` otherwise) -> image tensor."""
    path = Path(path)
    format = format or ("onnx" if path.suffix == ".onnx" else "torchscript")
    if format == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream, not removed
            return torch.jit.load(str(path), map_location="cpu")(*inputs)
    try:
        import onnxruntime
    except ImportError as e:
        raise ExportError("running an ONNX file needs onnxruntime: pip install 'condgen[export]'") from e
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs, strict=True)}
    return torch.from_numpy(session.run(None, feed)[0])


def export_run(
    run: Any,
    out: str | Path | None = None,
    *,
    format: str = "onnx",
    size: tuple[int, int] | None = None,
    batch: int = 1,
    ema: bool = False,
    check: bool = True,
) -> dict:
    """Export the generator of a `SynthesisPipeline`, or of what `condgen.load` loads (a run, checkpoint,
    converted official or save_pretrained folder, a registered name); `out` defaults to
    `<run name>[-ema]-<H>x<W>.<onnx|pt>` in the current folder. Returns the record (with `path`)."""
    from condgen.infer.pipeline import SynthesisPipeline

    pipe = run if isinstance(run, SynthesisPipeline) else SynthesisPipeline.from_pretrained(run, ema=ema)
    gan, spec, info = pipe.gan, pipe.spec, pipe.provenance
    size = tuple(size or spec.size)
    if out is None:
        name = Path(str(info["source"])).resolve().name + ("-ema" if ema else "")
        out = Path(f"{name}-{size[0]}x{size[1]}{FORMATS[format]}")
    meta = {"source": info["source"], "checkpoint": info.get("checkpoint"), "step": info.get("step"),
            "ema": bool(info.get("ema"))}
    record = export_generator(gan.G, spec, out, format=format, size=size, batch=batch, check=check, meta=meta)
    return {**record, "path": str(out)}
