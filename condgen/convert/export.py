"""Write converted official networks as a condgen run directory that `load_networks` reads."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

from safetensors.torch import save_file
from torch import nn

from condgen.convert.official import OfficialConfig
from condgen.data.spec import DataSpec
from condgen.infer.dataset import OFFICIAL_NAMES, official_dataset
from condgen.rundir import CONFIG_FILE, CONVERT_FILE, LATEST_FILE, STATE_FILE, mark_run_dir
from condgen.train.build import GAN, paper_names


def _gin_value(v: object) -> str:
    return repr(v) if not isinstance(v, bool) else ("True" if v else "False")


def official_config_gin(cfg: OfficialConfig, flags: str) -> str:
    """Gin bindings that rebuild exactly the networks of `cfg` through `build_gan`."""
    s = cfg.spec
    lines = [
        f"# Converted from an official {cfg.repo} checkpoint by `python -m condgen.convert`.",
        f"# Official flags: {flags}",
        f"DataSpec.label_nc = {s.label_nc}",
        f"DataSpec.contain_dontcare_label = {_gin_value(s.contain_dontcare_label)}",
        f"DataSpec.instance_edges = {_gin_value(s.instance_edges)}",
        f"DataSpec.crop_size = {s.crop_size}",
        f"DataSpec.aspect_ratio = {s.aspect_ratio}",
        f"build_gan.generator = @{cfg.generator}",
        f"build_gan.discriminator = @{cfg.discriminator}",
        f"build_gan.encoder = {'@VAEEncoder' if cfg.use_vae else 'None'}",
    ]
    gkw = dict(cfg.generator_kwargs)
    clade = cfg.generator.startswith("CLADE")
    for key, binding in (
        ("norm_param_free", "CLADE.param_free" if clade else "SPADE.param_free"),
        ("norm_kernel_size", "SPADE.kernel_size"),
        ("spectral", "CLADEResBlock.spectral" if clade else "SPADEResBlock.spectral"),
        ("instance_edge", "CLADE.instance_edge"),
        ("icpe", "CLADE.icpe"),
    ):
        if key in gkw:
            lines.append(f"{binding} = {_gin_value(gkw.pop(key))}")
    for k, v in gkw.items():
        lines.append(f"{cfg.generator}.{k} = {_gin_value(v)}")
    for k, v in cfg.discriminator_kwargs.items():
        lines.append(f"{cfg.discriminator}.{k} = {_gin_value(v)}")
    if cfg.use_vae:
        for k in ("ngf", "z_dim", "official_resize"):  # official_resize: its fc_mu's size at non-square crops
            if k in cfg.encoder_kwargs:
                lines.append(f"VAEEncoder.{k} = {_gin_value(cfg.encoder_kwargs[k])}")
    return "\n".join(lines) + "\n"


def write_run_dir(
    out: str | Path, nets: dict[str, nn.Module], config_gin: str, spec: DataSpec, meta: dict
) -> Path:
    """Write a condgen run directory whose one checkpoint, `step_0`, `load_networks` reads.

    Same layout as a trained run (`condgen.train.state`): `out/step_0/` holds config.gin, state.json and
    G/D/E.safetensors; `out/latest` names it; `out/convert.json` says where the weights came from. Written
    into a temporary sibling folder and renamed when complete.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new --out directory")
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    ckpt = tmp / "step_0"
    ckpt.mkdir(parents=True)
    models = {}
    for name, net in nets.items():
        models[name] = f"{name}.safetensors"
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(ckpt / models[name]))
    (ckpt / CONFIG_FILE).write_text(config_gin)
    g, d = paper_names(GAN(nets["G"], nets.get("D"), nets.get("E")))
    state = {
        "step": 0, "epoch": 0, "models": models, "spec": dataclasses.asdict(spec), "converted": True,
        "paper_names": {"G": g, "D": d},
    }
    if "flags" in meta:  # an official command line names the dataset (`--dataset_mode`, default coco)
        dataset = official_dataset(str(meta["flags"]))
        state["dataset"] = {"name": dataset, "classes": list(OFFICIAL_NAMES.get(dataset or "", ()))}
    (ckpt / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n")
    (tmp / LATEST_FILE).write_text("step_0\n")
    (tmp / CONVERT_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    (tmp / CONFIG_FILE).write_text(config_gin)
    mark_run_dir(tmp)
    if out.exists():
        out.rmdir()
    os.replace(tmp, out)
    return out
