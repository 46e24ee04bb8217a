"""The evaluation protocol: one function from a run to a metrics file that says how every number was made.

`evaluate(run)` generates one image per validation label map (latents seeded per image) and hands every
batch to the metrics (`condgen/eval/metrics/`: FID/KID against the real images, the segmenter's mIoU and
pixel accuracy on generated and real images (the upper bound), diversity (LPIPS, or its segmenter-feature
stand-in) for multi-modal models;
`evaluate.metrics = [...]` in gin swaps them). Under Accelerate (or torchrun) each process takes a
contiguous, exact slice of the images (no padding duplicates); metric states are gathered and the main
process computes the numbers, so N images are N images at any process count. The metrics JSON holds
`metrics`, `protocol` (every field that changes a number), `protocol_line` (one sentence for tables) and
`columns` (what reports show).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import gin
import torch
from torch import Tensor

from condgen.config import run_user_imports
from condgen.eval.metrics import (
    CMMD,
    FIDKID,
    DensityCoverage,
    EvalBatch,
    EvalContext,
    FDDINOv2,
    LPIPSDiversity,
    Metric,
    PrecisionRecall,
    SegmentationScore,
)
from condgen.eval.metrics.fid import resize_filter
from condgen.eval.segmenters import Segmenter
from condgen.eval.split import GENERATED_SPLIT, collate_items, eval_dataset, shard
from condgen.infer.diffusion import sampler_record
from condgen.infer.latents import latents
from condgen.infer.pipeline import SynthesisPipeline
from condgen.rundir import eval_path

__all__ = [
    "EXTRA_METRICS",
    "evaluate_images",
    "GENERATED_SPLIT",
    "collate_items",
    "default_metrics",
    "eval_dataset",
    "evaluate",
    "shard",
]

# the newer metrics by their command-line names (`condgen eval --metrics fd_dinov2 cmmd ...`)
EXTRA_METRICS = {
    "fd_dinov2": FDDINOv2,
    "cmmd": CMMD,
    "precision_recall": PrecisionRecall,
    "density_coverage": DensityCoverage,
}


def default_metrics(
    *,
    features: str = "inception",
    inception_weights: str | None = None,
    random_inception: bool = False,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    diversity_maps: int = 0,
    diversity_samples: int = 4,
    diversity_features: str = "alexnet",
    lpips_weights: str | None = None,
    random_lpips: bool = False,
    extra: tuple[str, ...] | list[str] = (),
    knn_features: str = "dinov2",
    random_extractors: bool = False,
    resize: str | None = None,
    extractor_weights: dict[str, str] | None = None,
    fid_resize: str = "legacy_tf",
) -> list[Metric]:
    """The standard set: FID/KID, the segmentation score, diversity (when `diversity_maps` > 0), + `extra`.

    `diversity_features`: 'alexnet' (LPIPS: `lpips_diversity`) or 'segmenter' (the LPIPS-style distance in
    the segmenter's feature maps: `seg_diversity`).
    `extra`: names of `EXTRA_METRICS` (fd_dinov2 on DINOv2, cmmd on CLIP, precision_recall and
    density_coverage on `knn_features`); `random_extractors`: their networks random and reduced (tests only);
    `resize`: their resize mode (default: each feature space's own); `extractor_weights`: {'dinov2': path,
    'clip': path, 'inception': path}; `fid_resize`: how images reach the FID Inception ('legacy_tf', 'clean').
    """
    unknown = sorted(set(extra) - set(EXTRA_METRICS))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {', '.join(EXTRA_METRICS)}")
    weights = extractor_weights or {}
    space = {"fd_dinov2": "dinov2", "cmmd": "clip"}
    extras: list[Metric] = []
    for name in extra:
        fs = space.get(name, knn_features)
        extras.append(
            EXTRA_METRICS[name](
                features=fs,
                weights=weights.get(fs, inception_weights if fs == "inception" else None),
                random_weights=random_extractors or (fs == "inception" and random_inception),
                resize=resize,
            )
        )
    return [
        FIDKID(
            features=features,
            inception_weights=inception_weights,
            random_inception=random_inception,
            kid_subsets=kid_subsets,
            kid_subset_size=kid_subset_size,
            resize=fid_resize,
        ),
        SegmentationScore(),
        LPIPSDiversity(
            maps=diversity_maps,
            samples=diversity_samples,
            backbone=diversity_features,
            lpips_weights=lpips_weights,
            random_lpips=random_lpips,
        ),
        *extras,
    ]


@gin.configurable("evaluate")
def bound_metrics(metrics: list[Metric] | None = None) -> list[Metric] | None:
    """`evaluate.metrics = [@FIDKID(), @MyMetric()]` in gin (read after the run's config and bindings)."""
    return metrics


@torch.no_grad()
def evaluate(
    source: str | Path | SynthesisPipeline,
    *,
    out: str | Path | None = None,
    split: str = "val",
    num_images: int | None = None,
    dataset: Any = None,
    bindings: tuple[str, ...] = (),
    metrics: list[Metric] | None = None,
    segmenter: str | Segmenter | None = "auto",
    segmenter_options: dict | None = None,
    latent: str = "random",
    seed: int = 0,
    ema: bool = False,
    batch_size: int = 16,
    cache: str | Path | None = None,
    progress: bool = False,
    **metric_options: Any,
) -> dict:
    """Evaluate a model (a `SynthesisPipeline`, or a run directory, checkpoint, converted official or
    `save_pretrained` folder); returns the metrics record.

    The evaluation runs with the run's gin config active (`pipe.config_scope()`: its dataset bindings build
    the split), plus `bindings`; gin's global config is as before afterwards.

    Args:
        out: metrics JSON path; default `default_out` (`<run>/eval/<split>_step<N>_<features>.json`).
        num_images: first N images of the split (default all; generated datasets get exactly N, default 500).
        dataset, bindings: override the run's dataset class / add gin bindings (e.g. a moved data root, or
            `evaluate.metrics = [...]`).
        metrics: the metrics to compute; default: the `evaluate.metrics` gin binding, else
            `default_metrics(**metric_options)` (features, inception_weights, random_inception, kid_subsets,
            kid_subset_size, diversity_maps, diversity_samples, diversity_features, lpips_weights,
            random_lpips).
        segmenter: registry name, a loaded `Segmenter`, 'auto' (the dataset's default) or None (no mIoU);
            a name may carry a protocol: 'deeplabv2_cocostuff:fullres', 'auto:fullres'. Shared by the
            metrics that use one.
        segmenter_options: `load_segmenter` keywords (weights=, expected_sha256=, protocol=).
        latent: for VAE generators, 'random' (z ~ N(0, I) seeded per image: label-only synthesis) or
            'encode' (the real image's posterior, as official test.py; then outputs depend on the real image).
    """
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # as `Accelerator` does: without CUDA (or with ACCELERATE_USE_CPU) processes join a gloo group on the CPU
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())
    device, t0 = state.device, time.perf_counter()
    run_user_imports(bindings)  # the user's own imports come before the run's saved config is read
    if isinstance(source, SynthesisPipeline):
        pipe = source
    else:
        pipe = SynthesisPipeline.from_pretrained(source, ema=ema, device=str(device))
    with pipe.config_scope():
        return _evaluate(
            pipe, state, device, t0, source=pipe.provenance.get("source", source), out=out, split=split,
            num_images=num_images, dataset=dataset, bindings=bindings, metrics=metrics, segmenter=segmenter,
            segmenter_options=segmenter_options, latent=latent, seed=seed, batch_size=batch_size,
            cache=cache, progress=progress, metric_options=metric_options,
        )


def _evaluate(
    pipe: SynthesisPipeline, state: Any, device: Any, t0: float, *, source: Any, out: Any, split: str,
    num_images: int | None, dataset: Any, bindings: tuple[str, ...], metrics: list[Metric] | None,
    segmenter: Any, segmenter_options: dict | None, latent: str, seed: int, batch_size: int, cache: Any,
    progress: bool, metric_options: dict[str, Any],
) -> dict:
    """`evaluate`'s body, with the run's config active."""
    spec, info = pipe.spec, pipe.provenance
    if bindings:
        gin.parse_config(list(bindings))
    ds = eval_dataset(spec, dataset=dataset, split=split, num_images=num_images)
    n = len(ds) if num_images is None else min(num_images, len(ds))
    if n < 2:
        raise ValueError(f"evaluation needs at least 2 images, the {split} split gives {n}")
    kind = pipe.latent_kind
    if latent not in ("random", "encode") or (latent == "encode" and pipe.E is None):
        raise ValueError(f"latent={latent!r}: choose 'random', or 'encode' for a run with a VAE encoder")
    metrics = metrics if metrics is not None else bound_metrics() or default_metrics(**metric_options)
    ctx = EvalContext(
        pipe, spec, ds, n, split, seed, device, state, segmenter, cache, batch_size, segmenter_options
    )
    for m in metrics:
        m.setup(ctx)
    state.wait_for_everyone()

    # --- the generation pass: one image per label map of this process's shard
    def make_fake(b: dict, label: Tensor, seg: Tensor, real: Tensor, idx: list[int]) -> Tensor:
        return _fake(pipe, seg, real, idx, seed=seed, latent=latent)

    parts = _protocol_pass(ctx, metrics, make_fake, progress=progress)
    if parts is None:  # not the main process
        return {}
    values, protocol_fields = _compute(metrics, parts)
    # throughput of all processes together (each generates its slice at the same time)
    values["generation_images_per_s"] = round(sum(p["generated"] / max(p["t_gen"], 1e-9) for p in parts), 2)
    h, w = spec.size
    protocol = {
        "source": info,
        "dataset": type(ds).__name__,
        "dataset_repr": repr(ds),
        "split": split,
        "images": n,
        "resolution": [h, w],
        "real_resize_filter": resize_filter(ds),
        "generated": "one per label map",
        "latent": {"vae": latent, "noise": "3-D noise seeded per image",
                   "diffusion": "diffusion noise seeded per image"}.get(kind, "none (label-map input)"),
        "latent_policy": latent,
        "sampler": sampler_record(pipe.G),  # diffusion models: steps, method and guidance scale
        "seed": seed,
        **protocol_fields,
        **_run_facts(metrics, state, t0),
    }
    features = next((m.features for m in metrics if isinstance(m, FIDKID)), "custom")
    path = Path(out) if out is not None else default_out(source, info, split, features)
    return _write_record(metrics, values, protocol, path, state)


def _write_record(metrics: list[Metric], values: dict, protocol: dict, path: Path, state: Any) -> dict:
    """The metrics file: numbers, protocol, its one-line summary and the report columns."""
    columns = [c._asdict() for m in metrics for c in m.columns if c.key in values]
    record = {
        "metrics": values,
        "protocol": protocol,
        "protocol_line": protocol_line(protocol),
        "columns": columns,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    record["path"] = str(path)
    state.wait_for_everyone()
    return record


@torch.no_grad()
def evaluate_images(
    images: str | Path,
    *,
    labels: str | Path,
    real: str | Path | None = None,
    dataset: str = "CustomFolder",
    label_nc: int | None = None,
    contain_dontcare_label: bool | None = None,
    allow_missing: bool = False,
    out: str | Path | None = None,
    metrics: list[Metric] | None = None,
    segmenter: str | Segmenter | None = "auto",
    segmenter_options: dict | None = None,
    batch_size: int = 16,
    cache: str | Path | None = None,
    progress: bool = False,
    **metric_options: Any,
) -> dict:
    """Score a folder of images made elsewhere (another repository's results) under the same protocol.

    Args:
        images: generated images, or a results folder in a known layout (`condgen.eval.foreign.LAYOUTS`).
        labels: their label maps (ids in `dataset`'s file convention), paired by file stem.
        real: the real photos, paired by stem (needed by FID/KID and the feature metrics; without them the
            segmentation score on the generated images is all there is).
        dataset: registered dataset whose conventions apply (label_nc, don't-care, default segmenter);
            `label_nc` / `contain_dontcare_label` override them.
        allow_missing: score what pairs when files lack partners (names recorded); default: an error.
        out: metrics JSON (default `<images>/condgen_eval_<features>.json`).
        metrics, segmenter, segmenter_options, batch_size, cache, metric_options: as in `evaluate`.
    """
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    from condgen.eval.foreign import ForeignImages, dataset_conventions
    from condgen.eval.segmenters import segmenter_for

    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())
    device, t0 = state.device, time.perf_counter()
    nc, dc = dataset_conventions(dataset)
    ds = ForeignImages(
        images,
        labels,
        real,
        label_nc=label_nc if label_nc is not None else nc,
        contain_dontcare_label=dc if contain_dontcare_label is None else contain_dontcare_label,
        allow_missing=allow_missing,
    )
    if isinstance(segmenter, str) and segmenter.partition(":")[0] == "auto":
        segmenter = segmenter_for(dataset) + segmenter[len("auto") :]
    if metrics is None:
        metrics = bound_metrics() or default_metrics(**metric_options)
        if real is None:  # without photos only the segmentation score on generated images exists
            metrics = [m for m in metrics if isinstance(m, SegmentationScore | LPIPSDiversity)]
    if any(isinstance(m, LPIPSDiversity) and m.maps for m in metrics):
        raise ValueError("diversity needs several samples per label map; a results folder holds one")
    metrics = [m for m in metrics if not isinstance(m, LPIPSDiversity)]
    needs_real = [type(m).__name__ for m in metrics if not isinstance(m, SegmentationScore)]
    if real is None and needs_real:
        raise ValueError(f"{', '.join(needs_real)} compare with real photos: pass --real DIR")
    spec, n = ds.spec, len(ds)
    ctx = EvalContext(
        None, spec, ds, n, "given", 0, device, state, segmenter, cache, batch_size, segmenter_options
    )
    for m in metrics:
        m.setup(ctx)
    state.wait_for_everyone()

    def read_fake(b: dict, label: Tensor, seg: Tensor, real_img: Tensor, idx: list[int]) -> Tensor:
        return b["fake"].to(device)

    parts = _protocol_pass(ctx, metrics, read_fake, progress=progress)
    if parts is None:
        return {}
    values, protocol_fields = _compute(metrics, parts)
    h, w = spec.size
    protocol = {
        "source": {"kind": "images folder", **ds.record()},
        "dataset": dataset,
        "dataset_repr": repr(ds),
        "split": "given",
        "images": n,
        "resolution": [h, w],
        "real_resize_filter": ds.preprocess,
        "generated": f"made elsewhere ({ds.layout})",
        "latent": "unknown (made elsewhere)",
        "latent_policy": "unknown",
        "seed": None,
        **protocol_fields,
        **_run_facts(metrics, state, t0),
    }
    features = next((m.features for m in metrics if isinstance(m, FIDKID)), "custom")
    path = Path(out) if out is not None else ds.folder / f"condgen_eval_{features}.json"
    return _write_record(metrics, values, protocol, path, state)


def _run_facts(metrics: list[Metric], state: Any, t0: float) -> dict[str, Any]:
    """The protocol's closing fields: metrics, processes, meaningless-number warnings, versions, wall time."""
    return {
        "metrics": [type(m).__name__ for m in metrics],
        "processes": state.num_processes,
        "meaningless": [msg for m in metrics for msg in m.meaningless()],
        "versions": _versions(),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def _protocol_pass(ctx: EvalContext, metrics: list[Metric], make_fake: Any, *, progress: bool) -> list | None:
    """Every batch of this process's shard through `make_fake` and the metrics; the gathered states.

    `make_fake(batch_dict, label, seg, real, indices)` returns the generated images in [-1, 1]. Returns
    None on the non-main processes (after their last barrier), else one part per process.
    """
    state, ds, device, spec = ctx.state, ctx.dataset, ctx.device, ctx.spec
    mine = shard(ctx.num_images, state.num_processes, state.process_index)
    t_gen = 0.0
    for start in range(mine.start, mine.stop, ctx.batch_size):
        idx = list(range(start, min(start + ctx.batch_size, mine.stop)))
        b = collate_items(ds, idx)
        label = b["label"].to(device)
        real = b["image"].to(device) if "image" in b else None
        seg = spec.encode(label, b["instance"].to(device) if "instance" in b else None)
        t = time.perf_counter()
        fake = make_fake(b, label, seg, real, idx)
        t_gen += time.perf_counter() - t
        batch = EvalBatch(idx, label, seg, real, fake)
        for m in metrics:
            m.update(batch)
        if progress and state.is_main_process:
            print(f"  {start + len(idx) - mine.start}/{len(mine)} images on process 0", flush=True)
    for m in metrics:
        m.extra_pass(ctx)
    parts = _gather(state, {"metrics": [m.state() for m in metrics], "t_gen": t_gen, "generated": len(mine)})
    if not state.is_main_process:
        state.wait_for_everyone()
        return None
    return parts


def _compute(metrics: list[Metric], parts: list) -> tuple[dict[str, Any], dict[str, Any]]:
    """The numbers and protocol fields of every metric, from every process's state (main process)."""
    values: dict[str, Any] = {}
    protocol_fields: dict[str, Any] = {}
    for i, m in enumerate(metrics):
        values.update(m.compute([p["metrics"][i] for p in parts]))
        protocol_fields.update(m.record())
    return values, protocol_fields


def _gather(state: Any, obj: Any) -> list:
    """Every process's `obj`, in process order (a list with one entry per process)."""
    if state.num_processes == 1:
        return [obj]
    from accelerate.utils import gather_object

    return gather_object([obj])


def default_out(source: str | Path, info: dict, split: str, features: str) -> Path:
    """`<run>/eval/<split>_step<N>_<features>[_ema].json`, or `<folder>/eval/<split>_<features>.json`."""
    return eval_path(info.get("checkpoint"), info.get("step"), source, split, features, bool(info.get("ema")))


def _fake(pipe: Any, seg: Tensor, real: Tensor, idx: list[int], *, seed: int, latent: str) -> Tensor:
    if latent == "encode" and pipe.E is not None:
        with pipe.speed_switches():
            mu, logvar = pipe.E(real)
            eps = latents(pipe.G.z_dim, idx, seed=seed).to(real)
            return pipe.G(seg, mu + torch.exp(0.5 * logvar) * eps)
    return pipe.generate(seg, idx, seed=seed)


def _versions() -> dict[str, str]:
    import torch_fidelity

    from condgen.version import __version__

    return {
        "condgen": __version__,
        "torch": torch.__version__,
        "torch_fidelity": torch_fidelity.__version__,
    }


def _short_sha(digest: Any) -> str:
    """12 hex digits of a digest; a description such as 'random(seed=0)' in full."""
    text = str(digest)
    return text[:12] if all(c in "0123456789abcdef" for c in text) else text


def protocol_line(p: dict) -> str:
    """One sentence with every protocol field that changes the numbers."""
    h, w = p["resolution"]
    parts = [f"{p['images']} {p['dataset']} {p['split']} images at {h}x{w} (real: {p['real_resize_filter']})"]
    f = p.get("features")
    if f:
        sha = _short_sha(f["weights_sha256"])
        resize = f" resize {f['resize']}," if f.get("resize") else ""
        parts.append(
            f"FID/KID features {f['name']} (sha256 {sha}),{resize} KID {p['kid_subsets']} subsets of "
            f"{p['kid_subset_size']}"
        )
    seg = p.get("segmenter")
    seg_txt = ""
    if seg:
        fed = seg["input_size"]
        fed = f"{fed[0]}x{fed[1]}" if isinstance(fed, list) else fed
        how = f" ({seg['protocol_name']}, mean over {seg['averaging']})" if seg.get("protocol_name") else ""
        seg_txt = f"; mIoU by {seg['name']} at {fed}{how}"
    div = p.get("seg_diversity") or p.get("diversity")
    if div:
        what = div["distance"]["name"] if "distance" in div else div["lpips"]["name"]
        seg_txt += f"; diversity {div['metric']} ({what}) over {div['maps']} maps x {div['samples_per_map']}"
    for key in ("fd_dinov2", "cmmd", "precision_recall", "density_coverage"):
        if p.get(key):
            f, k = p[key]["features"], p[key].get("k")
            sha = _short_sha(f["weights_sha256"])
            how = f"resize {f['resize']}" if f.get("resize") else "the segmenter's own resize"
            seg_txt += f"; {key}{f' k={k}' if k else ''} on {f['name']} (sha256 {sha}, {how})"
    flag = " [MEANINGLESS: random weights]" if p.get("meaningless") else ""
    noise = str(p.get("latent", "")).startswith("3-D noise")
    latent = "3-D noise seeded per image" if noise else f"VAE latents {p['latent_policy']}"
    if p.get("sampler"):  # a diffusion model: the sampler changes every image
        s = p["sampler"]
        latent = (f"{s['method'].upper()}-{s['steps']} sampling, guidance {s['guidance']:g}, noise seeded "
                  "per image")
    if str(p.get("generated", "")).startswith("made elsewhere"):
        src = p.get("source") or {}
        gaps = len(src.get("missing") or [])
        missing = f", {gaps} label maps without an image" if gaps else ""
        return "; ".join(parts) + f"; images {p['generated']}{missing}{seg_txt}{flag}"
    return "; ".join(parts) + f"; {latent}, seed {p['seed']}{seg_txt}{flag}"
