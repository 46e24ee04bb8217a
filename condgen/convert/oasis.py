"""Original OASIS (boschresearch/OASIS) and DP-GAN (sj-li/DP_GAN, an OASIS fork) checkpoints -> condgen.

`repo='oasis'` builds `OASISGenerator` / `OASISDiscriminator`, `repo='dpgan'` `DPGANGenerator` /
`DPGANDiscriminator` (the same options and file layout; the label pyramid's first conv reads the label
channels that OASIS's SPADE convs read).

`load_oasis(flags, G=..., D=..., EMA=...)` reads the original's architecture options (`--dataset_mode`,
`--channels_G`, `--z_dim`, `--no_3dnoise`, `--no_spectral_norm`, ...), builds the condgen networks and loads
the original state dicts strictly through the rename tables on the classes (`OFFICIAL_RENAMES`) and the
hook-API spectral-norm suffixes (`condgen.convert.keys`). The released checkpoints are
`checkpoints/<name>/models/{latest,best}_{G,D,EMA}.pth`; EMA is a generator.

Label channels: with `channel_order='condgen'` (default) the label-input channels of `fc` and of every SPADE
`mlp_shared` conv and the head's class channels are permuted from OASIS's order (don't-care first) to
condgen's (`condgen/data/oasis_labels.py`), so the converted networks read `encode_labels` output of the
condgen dataset class; `channel_order='oasis'` keeps the original's order (parity tests).
"""

from __future__ import annotations

import argparse
import shlex
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor, nn

from condgen.convert.keys import load_official_state, read_state_dict
from condgen.data.oasis_labels import dontcare_channel, oasis_to_condgen, permute_dim
from condgen.data.spec import DataSpec

# The original's per-dataset values: OASIS label_nc (semantic_nc = label_nc + 1), crop, aspect; and the
# condgen DataSpec with the same channels (condgen order) for each.
OASIS_DATASETS: dict[str, dict] = {
    "ade20k": dict(label_nc=150, crop_size=256, aspect_ratio=1.0, condgen_label_nc=150, dontcare=True),
    "coco": dict(label_nc=182, crop_size=256, aspect_ratio=1.0, condgen_label_nc=182, dontcare=True),
    "cityscapes": dict(label_nc=34, crop_size=512, aspect_ratio=2.0, condgen_label_nc=35, dontcare=False),
}
NETS = ("G", "D", "EMA")


@dataclass
class OASISConfig:
    """The architecture an original OASIS command line describes."""

    dataset_mode: str
    spec: DataSpec  # condgen's spec with the same number of label channels (no instance edges)
    channels_G: int = 64
    z_dim: int = 64
    no_3dnoise: bool = False
    spectral: bool = True
    repo: str = "oasis"  # or 'dpgan'

    @property
    def names(self) -> tuple[str, str]:
        """The condgen generator and discriminator classes."""
        if self.repo == "dpgan":
            return "DPGANGenerator", "DPGANDiscriminator"
        return "OASISGenerator", "OASISDiscriminator"

    @property
    def semantic_nc(self) -> int:
        return self.spec.semantic_nc

    @property
    def dontcare(self) -> int:
        """The condgen channel of OASIS's don't-care (value 0)."""
        return dontcare_channel(self.dataset_mode, self.spec.label_nc)


def parse_oasis_flags(flags: str | Sequence[str], repo: str = "oasis") -> OASISConfig:
    """Read the original OASIS (or DP-GAN) options that shape the networks; others are ignored (warned)."""
    if repo not in ("oasis", "dpgan"):
        raise ValueError(f"repo={repo!r}; choose 'oasis' or 'dpgan'")
    argv = shlex.split(flags) if isinstance(flags, str) else list(flags)
    p = argparse.ArgumentParser(prog="original OASIS flags", add_help=False)
    p.add_argument("--dataset_mode", default="ade20k")
    # --label_nc is not an original option (its dataset classes set it); here it sizes other label sets
    for name in ("label_nc", "channels_G", "z_dim", "crop_size", "num_res_blocks", "spade_ks"):
        p.add_argument(f"--{name}", type=int)
    p.add_argument("--aspect_ratio", type=float)
    p.add_argument("--param_free_norm", default="syncbatch")
    for name in ("no_3dnoise", "no_spectral_norm"):
        p.add_argument(f"--{name}", action="store_true")
    args, unknown = p.parse_known_args(argv)
    arch_unknown = [u for u in unknown if u.startswith("--") and not _non_arch(u)]
    if arch_unknown:
        warnings.warn(f"ignoring OASIS flags: {' '.join(arch_unknown)}", stacklevel=2)
    if args.dataset_mode not in OASIS_DATASETS:
        raise ValueError(f"--dataset_mode {args.dataset_mode!r}: choose one of {', '.join(OASIS_DATASETS)}")
    if repo == "dpgan" and args.no_3dnoise:
        raise ValueError("--no_3dnoise: the original DP-GAN cannot run without 3-D noise (its pyramid's "
                         "first BatchNorm has the wrong width), so no such checkpoint exists")
    if args.num_res_blocks not in (None, 6):
        raise ValueError("--num_res_blocks: the original's channel lists fix it at 6")
    if args.spade_ks not in (None, 3) or args.param_free_norm != "syncbatch":
        raise ValueError("only the original defaults --spade_ks 3 --param_free_norm syncbatch are supported")
    d = OASIS_DATASETS[args.dataset_mode]
    label_nc = d["condgen_label_nc"] if args.label_nc is None else args.label_nc + int(not d["dontcare"])
    spec = DataSpec(
        label_nc=label_nc,
        contain_dontcare_label=d["dontcare"],
        instance_edges=False,
        crop_size=args.crop_size or d["crop_size"],
        aspect_ratio=args.aspect_ratio or d["aspect_ratio"],
    )
    return OASISConfig(
        args.dataset_mode,
        spec,
        channels_G=args.channels_G or 64,
        z_dim=args.z_dim or 64,
        no_3dnoise=args.no_3dnoise,
        spectral=not args.no_spectral_norm,
        repo=repo,
    )


def _non_arch(flag: str) -> bool:
    return flag.split("=")[0] in (
        "--name", "--seed", "--gpu_ids", "--checkpoints_dir", "--batch_size", "--dataroot", "--num_epochs",
        "--lr_g", "--lr_d", "--beta1", "--beta2", "--lambda_labelmix", "--lambda_vgg", "--add_vgg_loss",
        "--no_balancing_inloss", "--no_labelmix", "--no_EMA", "--EMA_decay", "--which_iter", "--freq_fid",
        "--freq_print", "--freq_save_ckpt", "--freq_save_latest", "--freq_save_loss", "--freq_smooth_loss",
        "--continue_train", "--num_workers", "--no_flip", "--load_size", "--results_dir", "--phase",
        "--ckpt_iter", "--channels_D",
    )  # fmt: skip


def build_oasis(cfg: OASISConfig, names: Sequence[str] = NETS) -> dict[str, nn.Module]:
    """Freshly initialised condgen networks `names` (G, D, EMA: a second G) with the architecture of `cfg`."""
    from functools import partial

    from condgen.blocks.condition import LabelMapCondition
    from condgen.blocks.label_pyramid import LabelPyramidCondition
    from condgen.blocks.noise import NoiseCondition
    from condgen.blocks.spade import SPADE, SPADEResBlock
    from condgen.registry import get

    gen_name, disc_name = cfg.names
    gen_cls, disc_cls = get(gen_name, "generator").cls, get(disc_name, "discriminator").cls
    if cfg.repo == "dpgan":
        condition = partial(LabelPyramidCondition, z_dim=cfg.z_dim)
        block = partial(SPADEResBlock, norm=partial(SPADE, hidden=0), spectral=cfg.spectral)
    else:
        condition = LabelMapCondition if cfg.no_3dnoise else partial(NoiseCondition, z_dim=cfg.z_dim)
        block = partial(SPADEResBlock, spectral=cfg.spectral)

    def generator() -> nn.Module:
        return gen_cls(
            cfg.semantic_nc,
            crop_size=cfg.spec.crop_size,
            aspect_ratio=cfg.spec.aspect_ratio,
            ngf=cfg.channels_G,
            condition=condition,
            block=block,
        )

    def discriminator() -> nn.Module:
        return disc_cls(cfg.semantic_nc, spectral=cfg.spectral)

    build = {"G": generator, "EMA": generator, "D": discriminator}
    return {name: build[name]() for name in names}


def to_condgen_channels(state: Mapping[str, Tensor], net: str, cfg: OASISConfig) -> dict[str, Tensor]:
    """Permute an original state dict's label channels from OASIS order to condgen's (original key names)."""
    perm = oasis_to_condgen(cfg.semantic_nc, cfg.dontcare)
    out = dict(state)
    if net in ("G", "EMA"):
        offset = 0 if cfg.no_3dnoise else cfg.z_dim
        for k, v in state.items():
            if k in ("fc.weight", "seg_pyrmid.0.0.weight") or k.endswith(".mlp_shared.0.weight"):
                out[k] = permute_dim(v, perm, 1, offset)
    else:
        for k in ("layer_up_last.weight", "layer_up_last.bias"):
            out[k] = permute_dim(state[k], perm, 0, 1)
    return out


def load_oasis(
    flags: str | Sequence[str] = "",
    G: Mapping[str, Tensor] | str | Path | None = None,
    D: Mapping[str, Tensor] | str | Path | None = None,
    EMA: Mapping[str, Tensor] | str | Path | None = None,
    *,
    channel_order: str = "condgen",
    repo: str = "oasis",
) -> dict[str, nn.Module]:
    """Build condgen networks from an original OASIS command line and load its weights strictly.

    Args:
        flags: the original command line (only architecture options matter), e.g. "--dataset_mode coco".
        G, D, EMA: a state dict, a path to `{which_iter}_{G,D,EMA}.pth`, or None (skipped; EMA is returned
            only when given).
        channel_order: 'condgen' (networks read condgen's label maps) or 'oasis' (the original's order).
        repo: 'oasis' or 'dpgan' (DP-GAN's checkpoints: the same flags and file names).
    Returns:
        `{'G': ..., 'D': ..., 'EMA': ...}` in eval mode.
    """
    if channel_order not in ("condgen", "oasis"):
        raise ValueError(f"channel_order={channel_order!r}; choose 'condgen' or 'oasis'")
    cfg = parse_oasis_flags(flags, repo)
    nets = build_oasis(cfg, ["G", "D"] + (["EMA"] if EMA is not None else []))
    for name, source in (("G", G), ("D", D), ("EMA", EMA)):
        if source is None:
            continue
        state = read_state_dict(source, f"OASIS {name}")
        if channel_order == "condgen":
            state = to_condgen_channels(state, name, cfg)
        net = nets[name]
        load_official_state(net, state, type(net).OFFICIAL_RENAMES, what=f"{repo} {name}")
    return {k: v.eval() for k, v in nets.items()}


def oasis_config_gin(cfg: OASISConfig, flags: str) -> str:
    """Gin bindings that rebuild the converted networks through `build_gan`."""
    s = cfg.spec
    G, D = cfg.names
    if cfg.repo == "dpgan":
        condition = [
            "DPGANGenerator.condition = @LabelPyramidCondition", f"LabelPyramidCondition.z_dim = {cfg.z_dim}",
            "train.objective = @DPGANObjective", f"DPGANObjective.dontcare_channel = {cfg.dontcare}",
        ]
    else:
        noise = "@LabelMapCondition" if cfg.no_3dnoise else "@NoiseCondition"
        condition = [
            f"OASISGenerator.condition = {noise}", f"NoiseCondition.z_dim = {cfg.z_dim}",
            f"OASISObjective.dontcare_channel = {cfg.dontcare}",
        ]
    lines = [
        f"# Converted from an original {cfg.repo} checkpoint by `python -m condgen.convert {cfg.repo}`.",
        f"# Original flags: {flags}",
        f"DataSpec.label_nc = {s.label_nc}",
        f"DataSpec.contain_dontcare_label = {s.contain_dontcare_label}",
        "DataSpec.instance_edges = False",
        f"DataSpec.crop_size = {s.crop_size}",
        f"DataSpec.aspect_ratio = {s.aspect_ratio}",
        f"build_gan.generator = @{G}",
        f"build_gan.discriminator = @{D}",
        "build_gan.encoder = None",
        f"{G}.ngf = {cfg.channels_G}",
        *condition,
        f"SPADEResBlock.spectral = {cfg.spectral}",
        f"{D}.spectral = {cfg.spectral}",
    ]
    return "\n".join(lines) + "\n"


def convert_main(flags: str, checkpoint_dir: Path, which: str, out: Path, repo: str = "oasis") -> int:
    """`python -m condgen.convert {oasis,dpgan} ...`: a run dir with G (the EMA weights when present), D and
    `ema` (the EMA generator, `load_networks(..., ema=True)`)."""
    import sys

    from condgen.convert.export import write_run_dir

    models = checkpoint_dir / "models" if (checkpoint_dir / "models").is_dir() else checkpoint_dir
    files = {n: models / f"{which}_{n}.pth" for n in NETS}
    if not files["G"].is_file() and not files["EMA"].is_file():
        found = (
            ", ".join(sorted(f.name for f in models.glob("*.pth"))) if models.is_dir() else "folder missing"
        )
        print(
            f"error: neither {files['G']} nor {files['EMA']} found (found: {found or 'no .pth files'})",
            file=sys.stderr,
        )
        return 2
    sources = {n: (f if f.is_file() else None) for n, f in files.items()}
    nets = load_oasis(flags, **sources, repo=repo)
    run_nets = {"G": nets.get("EMA", nets["G"]), "D": nets["D"]}
    if "EMA" in nets:
        run_nets["ema"] = nets["EMA"]
    cfg = parse_oasis_flags(flags, repo)
    meta = {
        "repo": repo,
        "flags": flags,
        "loaded": {n: str(f) for n, f in sources.items() if f},
        "G_is": "EMA" if "EMA" in nets else "G",
        "channel_order": "condgen",
    }
    path = write_run_dir(out, run_nets, oasis_config_gin(cfg, flags), cfg.spec, meta)
    print(f"wrote {path} (networks: {', '.join(run_nets)}; G = the {meta['G_is']} weights)")
    return 0
