"""`save_pretrained` folders: a trained model that describes itself, and its upload to the Hugging Face Hub.

Layout (every file written by `save_folder`, read back by `load_folder`):

| file | holds |
|---|---|
| `model.safetensors` | the generator (`G.*`) and VAE encoder (`E.*`) the pipeline uses |
| `ema.safetensors` | the run's EMA generator (`G.*`), when the pipeline holds the plain one |
| `config.gin` | the run's operative gin config (the networks are rebuilt from it) |
| `pipeline.json` | spec, dataset entry, latent kind, paper names, parameter counts, provenance, file sha256 |
| `classes.json` | id, name and colour of every label id; the don't-care id; instance maps needed? |
| `protocol.json` | the scored evaluations found with the run (metrics and their protocol) |
| `README.md` | a model card with YAML metadata (licence, datasets, metrics, base checkpoint) |
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from condgen.config import active_config
from condgen.data.spec import DataSpec
from condgen.infer.dataset import DatasetInfo
from condgen.infer.pretrained import MODELS, NVIDIA_LICENSE, verify_sha256
from condgen.weights import sha256_file

FILES = (
    "model.safetensors",
    "ema.safetensors",
    "config.gin",
    "pipeline.json",
    "classes.json",
    "protocol.json",
)


def _flat(nets: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{name}.{k}": v.detach().contiguous().cpu()
        for name, net in nets.items()
        for k, v in net.state_dict().items()
    }


def save_folder(
    pipe: Any,
    folder: Path,
    *,
    license: str | None = None,
    base_model: str | None = None,
    model_name: str | None = None,
) -> Path:
    """Write `pipe` as a self-describing folder (see the module docstring).

    Args:
        license: the card's licence id; default: the registered model's for converted official weights
            (NVIDIA's are CC BY-NC-SA 4.0 and stay so), else 'other' (say which in the card).
        base_model: what the weights derive from (default: the official files or the run's checkpoint).
    """
    folder.mkdir(parents=True, exist_ok=True)
    nets = {"G": pipe.G} | ({"E": pipe.E} if pipe.E is not None else {})
    save_file(_flat(nets), str(folder / "model.safetensors"))
    ckpt = pipe.provenance.get("checkpoint")
    if not pipe.provenance.get("ema"):  # keep the EMA generator the run (or the folder) has beside this one
        run_ema = Path(ckpt) / "ema.safetensors" if ckpt else None
        folder_ema = Path(str(pipe.provenance.get("source"))) / "ema.safetensors"
        if run_ema is not None and run_ema.is_file():
            ema = {f"G.{k}": v for k, v in load_file(str(run_ema)).items()}
            save_file(ema, str(folder / "ema.safetensors"))
        elif run_ema is None and folder_ema.is_file() and folder_ema != folder / "ema.safetensors":
            save_file(load_file(str(folder_ema)), str(folder / "ema.safetensors"))
    (folder / "config.gin").write_text(pipe.config)
    (folder / "classes.json").write_text(json.dumps(classes_json(pipe.dataset), indent=1) + "\n")
    protocol = scored_metrics(pipe)
    (folder / "protocol.json").write_text(json.dumps(protocol, indent=1) + "\n")
    record = pipeline_json(pipe)
    registered = _registered(pipe)
    record["files"] = {
        f: sha256_file(folder / f) for f in ("model.safetensors", "ema.safetensors") if (folder / f).is_file()
    }
    (folder / "pipeline.json").write_text(json.dumps(record, indent=1) + "\n")
    if license is None:
        license = (
            registered.license
            if registered is not None
            else (NVIDIA_LICENSE if pipe.provenance.get("kind") == "converted official" else "other")
        )
    base = base_model or (registered.name if registered else str(ckpt or pipe.provenance.get("source")))
    (folder / "README.md").write_text(model_card(pipe, protocol, license, base, model_name or folder.name))
    return folder


def load_folder(cls: Any, folder: Path, *, ema: bool = False, device: str = "cpu") -> Any:
    """A `SynthesisPipeline` from a `save_pretrained` folder; weight files checked by sha256."""
    from condgen.train.build import build_gan

    record = json.loads((folder / "pipeline.json").read_text())
    if record.get("format") != 1:
        raise ValueError(
            f"{folder / 'pipeline.json'}: format {record.get('format')!r}; this condgen reads format 1"
        )
    name = "ema.safetensors" if ema else "model.safetensors"
    if not (folder / name).is_file():
        raise FileNotFoundError(
            f"{folder / name} does not exist (saved from a pipeline without an EMA generator?)"
        )
    for file, digest in record.get("files", {}).items():
        verify_sha256(folder / file, digest)
    spec = DataSpec(**record["spec"])
    config = (folder / "config.gin").read_text()
    with active_config(config, str(folder / "config.gin")):
        gan = build_gan(spec)
    gan.D = None  # the discriminator is not part of a pretrained folder
    weights = load_file(str(folder / "model.safetensors"))
    if ema:
        weights |= load_file(str(folder / "ema.safetensors"))
    for net_name, net in gan.named().items():
        prefix = f"{net_name}."
        net.load_state_dict({k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)})
        net.to(device).eval()
    info = {
        "source": str(folder),
        "kind": "pretrained folder",
        "checkpoint": None,
        "ema": ema,
        "step": record["provenance"].get("step"),
        "base": record["provenance"],
    }
    dataset = DatasetInfo.from_json(record["dataset"], "pipeline.json")
    names = (record["paper_names"]["G"], record["paper_names"]["D"])
    return cls(gan, spec, dataset, config, info, names, device, dict(record.get("params", {})))


def classes_json(d: DatasetInfo) -> dict[str, Any]:
    return {
        "dataset": d.name,
        "dontcare": d.dontcare,
        "unlabelled_value": 255 if d.dontcare is not None else None,
        "instance_maps": d.instance_edges,
        "classes": [{"id": i, "name": name, "color": list(color)} for i, name, color in d.entries()],
    }


def scored_metrics(pipe: Any) -> list[dict[str, Any]]:
    """Every evaluation record found with the model: the run's `eval/*.json`, or a folder's protocol.json."""
    from condgen.rundir import eval_files

    source = Path(str(pipe.provenance.get("source")))
    if (source / "protocol.json").is_file():
        return json.loads((source / "protocol.json").read_text())
    ckpt = pipe.provenance.get("checkpoint")
    runs = [Path(ckpt).parent, Path(ckpt)] if ckpt else []
    out = []
    for run in runs:
        for file in eval_files(run) if run.is_dir() else []:
            rec = json.loads(file.read_text())
            out.append(
                {
                    "file": file.name,
                    "metrics": rec.get("metrics", {}),
                    "protocol_line": rec.get("protocol_line"),
                    "protocol": rec.get("protocol", {}),
                }
            )
    registered = _registered(pipe)
    if registered is not None:
        out.append(
            {
                "file": None,
                "metrics": registered.reported,
                "protocol_line": registered.protocol,
                "reported_by": registered.paper,
            }
        )
    return out


def _registered(pipe: Any) -> Any:
    """The registered official model a converted folder came from (matched by its flags), else None."""
    official = pipe.provenance.get("official") or {}
    if not official:
        return None
    for m in MODELS.values():
        if m.converter == official.get("repo") and m.flags == official.get("flags"):
            return m
    return None


def model_card(pipe: Any, protocol: list[dict[str, Any]], license: str, base: str, name: str) -> str:
    """README.md with YAML front matter: licence, datasets, metrics, base checkpoint."""
    metrics = sorted({k for rec in protocol for k in rec.get("metrics", {})})
    lines = [
        "---",
        f"license: {json.dumps(license)}",
        "library_name: condgen",
        "tags:",
        "  - semantic-image-synthesis",
        "  - image-to-image",
        "  - condgen",
    ]
    if pipe.dataset.name:
        lines += ["datasets:", f"  - {json.dumps(pipe.dataset.name)}"]
    if metrics:
        lines += ["metrics:"] + [f"  - {json.dumps(m)}" for m in metrics]
    lines += [f"base_model: {json.dumps(base)}", "---", "", f"# {name}", ""]
    h, w = pipe.spec.size
    lines += [
        f"{pipe.paper_names[0]} generator (discriminator in training: {pipe.paper_names[1]}) for "
        f"{pipe.dataset.name or 'an unnamed dataset'}, {w}x{h} pixels, {pipe.spec.label_nc} classes; latent: "
        f"{pipe.latent.describe}. Parameters: "
        + ", ".join(f"{k} {v:,}" for k, v in pipe.params.items())
        + ".",
        "",
        "```python",
        "import condgen",
        "",
        f'pipe = condgen.load("{name}")',
        "images = pipe(label_ids, seed=0)  # (b, H, W) class ids, or label PNG paths -> PIL images",
        "```",
        "",
        f"Licence: {license}. Derived from: {base}.",
        "",
    ]
    if protocol:
        lines += ["## Scores", "", "| metric | value | protocol |", "|---|---|---|"]
        for rec in protocol:
            for k, v in rec.get("metrics", {}).items():
                lines.append(f"| {k} | {v} | {rec.get('protocol_line') or rec.get('file') or ''} |")
        lines.append("")
    return "\n".join(lines)


def push(pipe: Any, repo_id: str, *, private: bool = False, token: str | None = None, **card: Any) -> Any:
    """Write the folder into a temporary directory and upload it (`HfApi.create_repo` + `upload_folder`)."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        save_folder(pipe, Path(tmp), model_name=card.pop("model_name", repo_id), **card)
        return api.upload_folder(folder_path=tmp, repo_id=repo_id, commit_message="condgen save_pretrained")


def pipeline_json(pipe: Any) -> dict[str, Any]:
    """The facts `pipeline.json` of a `save_pretrained` folder records."""
    return {
        "format": 1,
        "spec": asdict(pipe.spec),
        "dataset": pipe.dataset.to_json(),
        "latent": pipe.latent.name,
        "paper_names": {"G": pipe.paper_names[0], "D": pipe.paper_names[1]},
        "params": pipe.params,
        "ema": bool(pipe.provenance.get("ema")),
        "provenance": json.loads(json.dumps(pipe.provenance, default=str)),
    }
