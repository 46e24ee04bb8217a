"""The evaluation protocol: one function from a run to a metrics file that says how every number was made.

`evaluate(run)` generates one image per validation label map (latents seeded per image), then computes
FID and KID against the real validation images (features of the FID Inception by default, or of the
dataset's segmenter), mIoU / pixel accuracy of the dataset's segmenter on the generated images and on the
real ones (the upper bound), and, for multi-modal models, LPIPS diversity. Under Accelerate (or torchrun)
each process takes a contiguous, exact slice of the images (no padding duplicates); features and confusion
counts are gathered and the main process computes the metrics, so N images are N images at any process
count. Real features are cached per protocol (`fid.cached_features`). The metrics JSON holds `metrics`,
`protocol` (every field that changes a number) and `protocol_line` (one sentence for tables).
"""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from condgen.eval.fid import (
    cache_key,
    cache_path,
    cached_features,
    fid_from_features,
    kid_from_features,
    to_uint8,
)
from condgen.eval.segmenters import Segmenter, load_segmenter, segmenter_for
from condgen.eval.synthesize import encode_seg, generate, latents, load_generator

FEATURES = ("inception", "segmenter")
GENERATED_SPLIT = 500  # validation images of a generated dataset (no natural size) unless num_images says


def shard(n: int, num_processes: int, process_index: int) -> range:
    """This process's contiguous slice of 0..n-1; slices differ in size by at most one, none repeats."""
    per, extra = divmod(n, num_processes)
    start = process_index * per + min(process_index, extra)
    return range(start, start + per + (process_index < extra))


def _gather(state: Any, obj: Any) -> list:
    """Every process's `obj`, in process order (a list with one entry per process)."""
    if state.num_processes == 1:
        return [obj]
    from accelerate.utils import gather_object

    return gather_object([obj])


def eval_dataset(spec: Any, *, dataset: Any = None, split: str = "val", num_images: int | None = None) -> Any:
    """The run's dataset class (gin `train.dataset`, or `dataset`) built for `split` without augmentation.

    Built inside the gin scope `eval`, so `eval/SyntheticLandscapes.length = 500` style bindings apply.
    """
    import gin

    from condgen.registry import get

    if dataset is None:
        try:
            ref = gin.query_parameter("train.dataset")
        except ValueError:
            raise ValueError(
                "the run's config binds no train.dataset (a converted official checkpoint?); "
                "pass dataset= / --dataset NAME and its bindings, e.g. \"CocoStuff.root = '...'\""
            ) from None
        dataset = ref.selector.split(".")[-1]
    cls = get(dataset, "dataset").cls if isinstance(dataset, str) else dataset
    params = inspect.signature(inspect.unwrap(cls.__init__)).parameters
    kwargs: dict[str, Any] = {"split": split}
    if "flip" in params:
        kwargs["flip"] = False
    if "length" in params:  # a generated dataset: exactly the requested number of items
        kwargs["length"] = num_images if num_images is not None else GENERATED_SPLIT
    with gin.config_scope("eval"):
        ds = cls(**kwargs)
    got = ds.spec
    if (got.semantic_nc, got.size) != (spec.semantic_nc, spec.size):
        raise ValueError(
            f"the {split} dataset {ds!r} gives {got.semantic_nc} label channels at {got.size}, the "
            f"generator expects {spec.semantic_nc} at {spec.size}; bind the dataset like the run"
        )
    return ds


def _batch(ds: Any, indices: list[int]) -> dict[str, Tensor]:
    items = [ds[i] for i in indices]
    out = {k: torch.stack([it[k] for it in items]) for k in ("label", "image")}
    if "instance" in items[0]:
        out["instance"] = torch.stack([it["instance"] for it in items])
    return out


def _resize_filter(ds: Any) -> str:
    if type(ds).__name__ == "SyntheticLandscapes":
        return "none (rendered at the output size)"
    return f"{getattr(ds, 'preprocess', '?')}: photos bicubic, labels nearest (the dataset's own pipeline)"


@torch.no_grad()
def evaluate(
    source: str | Path,
    *,
    out: str | Path | None = None,
    split: str = "val",
    num_images: int | None = None,
    dataset: Any = None,
    bindings: tuple[str, ...] = (),
    features: str = "inception",
    inception_weights: str | None = None,
    random_inception: bool = False,
    segmenter: str | Segmenter | None = "auto",
    segmenter_options: dict | None = None,
    latent: str = "random",
    seed: int = 0,
    ema: bool = False,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    diversity_maps: int = 0,
    diversity_samples: int = 4,
    lpips_weights: str | None = None,
    random_lpips: bool = False,
    batch_size: int = 16,
    cache: str | Path | None = None,
    progress: bool = False,
) -> dict:
    """Evaluate a run (directory, checkpoint or converted official folder); returns the metrics record.

    Args:
        out: metrics JSON path; default `default_out` (`<run>/eval/<split>_step<N>_<features>.json`).
        num_images: first N images of the split (default all; generated datasets get exactly N, default 500).
        dataset, bindings: override the run's dataset class / add gin bindings (e.g. a moved data root).
        features: 'inception' (the field's FID network) or 'segmenter' (the segmenter's features: a domain
            FID, not comparable with published numbers).
        random_inception, random_lpips: seeded random networks instead of the weight files (tests only).
        segmenter: registry name, a loaded `Segmenter`, 'auto' (the dataset's default) or None (no mIoU);
            a name may carry a protocol: 'deeplabv2_cocostuff:fullres', 'auto:fullres'.
        segmenter_options: `load_segmenter` keywords (weights=, expected_sha256=, protocol=).
        latent: for VAE generators, 'random' (z ~ N(0, I) seeded per image: label-only synthesis) or
            'encode' (the real image's posterior, as official test.py; then outputs depend on the real image).
        diversity_maps, diversity_samples: LPIPS diversity over the first maps, samples each (0 = skip).
    """
    import gin
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # as `Accelerator` does: without CUDA (or with ACCELERATE_USE_CPU) processes join a gloo group on the CPU
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())
    device = state.device
    t0 = time.perf_counter()
    gan, spec, info = load_generator(source, ema=ema, device=str(device))
    if bindings:
        gin.parse_config(list(bindings))
    ds = eval_dataset(spec, dataset=dataset, split=split, num_images=num_images)
    n = len(ds) if num_images is None else min(num_images, len(ds))
    if n < 2:
        raise ValueError(f"evaluation needs at least 2 images, the {split} split gives {n}")
    multimodal = bool(getattr(gan.G, "use_vae", False))
    if latent not in ("random", "encode") or (latent == "encode" and gan.E is None):
        raise ValueError(f"latent={latent!r}: choose 'random', or 'encode' for a run with a VAE encoder")
    if features not in FEATURES:
        raise ValueError(f"features={features!r}; choose one of {', '.join(FEATURES)}")

    seg_net = segmenter
    if isinstance(segmenter, str) and segmenter.partition(":")[0] == "auto":
        seg_net = segmenter_for(ds) + segmenter[len("auto") :]
    if isinstance(seg_net, str):
        with state.main_process_first():  # the landscape segmenter trains once, then everyone reads the cache
            seg_net = load_segmenter(seg_net, **(segmenter_options or {}))
    if seg_net is not None:
        seg_net.to(device)
    if features == "segmenter":
        if seg_net is None:
            raise ValueError("features='segmenter' needs a segmenter")
        extractor, extractor_record = (
            seg_net.features,
            {
                "name": f"segmenter:{seg_net.spec.name}",
                "weights_sha256": seg_net.record.get("weights_sha256"),
                "input_size": list(seg_net.spec.input_size or spec.size),
            },
        )
    else:
        from condgen.eval.inception import InceptionFeatures

        inception = InceptionFeatures(weights=inception_weights, random_weights=random_inception).to(device)
        extractor = lambda img: inception(to_uint8(img))  # noqa: E731
        extractor_record = {
            "name": inception.name,
            "weights_sha256": inception.weights_sha256,
            "input_size": [299, 299],
            "resize": "TF1-compatible bilinear (torch-fidelity)",
        }

    h, w = spec.size
    cache_fields = {
        "dataset": type(ds).__name__,
        "dataset_repr": repr(ds),
        "split": split,
        "images": n,
        "resolution": f"{h}x{w}",
        "resize_filter": _resize_filter(ds),
        "extractor": extractor_record["name"],
        "extractor_weights": extractor_record["weights_sha256"],
    }
    need_real = not cache_path(cache_fields, cache).is_file()
    state.wait_for_everyone()

    mine = shard(n, state.num_processes, state.process_index)
    real_f, fake_f = [], []
    k = seg_net.spec.num_classes if seg_net is not None else 0
    conf_fake = torch.zeros(k, k, dtype=torch.long)
    conf_real = torch.zeros(k, k, dtype=torch.long)
    t_gen, generated = 0.0, 0
    for start in range(mine.start, mine.stop, batch_size):
        idx = list(range(start, min(start + batch_size, mine.stop)))
        b = _batch(ds, idx)
        label, real = b["label"].to(device), b["image"].to(device)
        seg = encode_seg(label, spec, b["instance"].to(device) if "instance" in b else None)
        t = time.perf_counter()
        fake = _fake(gan, seg, real, idx, seed=seed, latent=latent)
        t_gen += time.perf_counter() - t
        generated += len(idx)
        fake_f.append(extractor(fake).cpu().numpy())
        if need_real:
            real_f.append(extractor(real).cpu().numpy())
        if seg_net is not None:
            # the segmenter's protocol (input size, which labels); the real upper bound goes the same way
            conf_fake += seg_net.confusion(fake, label, ds=ds, indices=idx)
            conf_real += seg_net.confusion(real, label, ds=ds, indices=idx)
        if progress and state.is_main_process:
            print(f"  {start + len(idx) - mine.start}/{len(mine)} images on process 0", flush=True)

    div_sum, div_pairs, div_maps = 0.0, 0, 0
    lpips_record = None
    if multimodal and diversity_maps > 0:
        from condgen.eval.diversity import LPIPS, mean_pairwise

        lpips = LPIPS(weights=lpips_weights, random_weights=random_lpips).to(device)
        lpips_record = lpips.record
        for i in shard(min(diversity_maps, n), state.num_processes, state.process_index):
            b = _batch(ds, [i])
            seg = encode_seg(
                b["label"].to(device), spec, b["instance"].to(device) if "instance" in b else None
            )
            samples = torch.cat(
                [generate(gan, seg, [i], seed=seed, sample=s) for s in range(diversity_samples)]
            )
            mean, pairs = mean_pairwise(lpips, samples)
            div_sum, div_pairs, div_maps = div_sum + mean, div_pairs + pairs, div_maps + 1

    parts = _gather(
        state,
        {
            "fake": fake_f,
            "real": real_f,
            "conf_fake": conf_fake,
            "conf_real": conf_real,
            "t_gen": t_gen,
            "generated": generated,
            "div": (div_sum, div_maps),
        },
    )
    if not state.is_main_process:
        state.wait_for_everyone()
        return {}
    fake_all = np.concatenate([a for p in parts for a in p["fake"]])
    if len(fake_all) != n:
        raise RuntimeError(f"gathered {len(fake_all)} generated images, expected exactly {n}")

    def compute_real() -> np.ndarray:
        return np.concatenate([a for p in parts for a in p["real"]])

    real_all, real_path, hit = cached_features(cache_fields, compute_real, root=cache)
    metrics: dict[str, Any] = {"fid": fid_from_features(real_all, fake_all)}
    metrics.update(
        kid_from_features(real_all, fake_all, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    )
    seg_record = None
    if seg_net is not None:
        fake_scores = seg_net.scores(sum(p["conf_fake"] for p in parts))
        real_scores = seg_net.scores(sum(p["conf_real"] for p in parts))
        metrics.update(
            miou=fake_scores["miou"],
            pixel_accuracy=fake_scores["pixel_accuracy"],
            real_miou=real_scores["miou"],
            real_pixel_accuracy=real_scores["pixel_accuracy"],
            per_class_iou=fake_scores["per_class_iou"],
            real_per_class_iou=real_scores["per_class_iou"],
        )
        seg_record = {
            **seg_net.record,
            "input_size": list(seg_net.spec.input_size or spec.size),
            "label_remap": seg_net.spec.label_remap is not None,
            "ignore_index": seg_net.spec.ignore_index,
            "protocol": seg_net.spec.protocol,
            **seg_net.describe(spec.size),
        }
    div_total = sum(p["div"][0] for p in parts)
    div_count = sum(p["div"][1] for p in parts)
    if div_count:
        metrics["lpips_diversity"] = div_total / div_count
    # throughput of all processes together (each generates its slice at the same time)
    metrics["generation_images_per_s"] = round(sum(p["generated"] / max(p["t_gen"], 1e-9) for p in parts), 2)

    meaningless = []
    if features == "inception" and random_inception:
        meaningless.append(
            "FID/KID use a RANDOM Inception (random_inception=True): the numbers are meaningless"
        )
    if lpips_record and random_lpips:
        meaningless.append("LPIPS uses a RANDOM AlexNet (random_lpips=True): diversity is meaningless")
    protocol = {
        "source": info,
        "dataset": type(ds).__name__,
        "dataset_repr": repr(ds),
        "split": split,
        "images": n,
        "resolution": [h, w],
        "real_resize_filter": _resize_filter(ds),
        "generated": "one per label map",
        "latent": latent if multimodal else "none (label-map input)",
        "latent_policy": latent,
        "seed": seed,
        "features": extractor_record,
        "kid_subsets": metrics["kid_subsets"],
        "kid_subset_size": metrics["kid_subset_size"],
        "real_features_cache": {"path": str(real_path), "hit": hit, "key": cache_key(**cache_fields)},
        "segmenter": seg_record,
        "diversity": {"lpips": lpips_record, "maps": div_count, "samples_per_map": diversity_samples}
        if lpips_record
        else None,
        "processes": state.num_processes,
        "meaningless": meaningless,
        "versions": _versions(),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    record = {"metrics": metrics, "protocol": protocol, "protocol_line": protocol_line(protocol)}
    path = Path(out) if out is not None else default_out(source, info, split, features)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    record["path"] = str(path)
    state.wait_for_everyone()
    return record


def default_out(source: str | Path, info: dict, split: str, features: str) -> Path:
    """`<run>/eval/<split>_step<N>_<features>[_ema].json`, or `<folder>/eval/<split>_<features>.json`."""
    ema = "_ema" if info.get("ema") else ""
    if info.get("checkpoint"):
        ckpt = Path(info["checkpoint"])
        return ckpt.parent / "eval" / f"{split}_step{info.get('step')}_{features}{ema}.json"
    return Path(source) / "eval" / f"{split}_{features}{ema}.json"


def _fake(gan: Any, seg: Tensor, real: Tensor, idx: list[int], *, seed: int, latent: str) -> Tensor:
    if latent == "encode" and gan.E is not None:
        mu, logvar = gan.E(real)
        eps = latents(gan.G.z_dim, idx, seed=seed).to(real)
        return gan.G(seg, mu + torch.exp(0.5 * logvar) * eps)
    return generate(gan, seg, idx, seed=seed)


def _versions() -> dict[str, str]:
    import torch_fidelity

    import condgen

    return {
        "condgen": condgen.__version__,
        "torch": torch.__version__,
        "torch_fidelity": torch_fidelity.__version__,
    }


def protocol_line(p: dict) -> str:
    """One sentence with every protocol field that changes the numbers."""
    h, w = p["resolution"]
    f = p["features"]
    seg = p.get("segmenter")
    seg_txt = ""
    if seg:
        fed = seg["input_size"]
        fed = f"{fed[0]}x{fed[1]}" if isinstance(fed, list) else fed
        how = f" ({seg['protocol_name']}, mean over {seg['averaging']})" if seg.get("protocol_name") else ""
        seg_txt = f"; mIoU by {seg['name']} at {fed}{how}"
    sha = str(f["weights_sha256"])[:12]
    flag = " [MEANINGLESS: random weights]" if p.get("meaningless") else ""
    return (
        f"{p['images']} {p['dataset']} {p['split']} images at {h}x{w} (real: {p['real_resize_filter']}); "
        f"FID/KID features {f['name']} (sha256 {sha}), KID {p['kid_subsets']} subsets of "
        f"{p['kid_subset_size']}; VAE latents {p['latent_policy']}, seed {p['seed']}{seg_txt}{flag}"
    )
