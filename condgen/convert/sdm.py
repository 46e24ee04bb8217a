"""Released SDM checkpoints (WeilunWang/semantic-diffusion-model) -> a condgen run directory with `SDMUNet`.

`python -m condgen.convert sdm --flags "<the original's model flags>" --checkpoint_dir DIR --out OUT` reads
guided-diffusion's files in DIR: `ema_0.9999_<step>.pt` (the EMA weights, what the README samples with) and/or
`model<step>.pt` (the raw weights); the newest step, or `--which_epoch <step>`. The keys are the UNet's own
(`SDMUNet` keeps the original module names), so loading is strict without a rename table; only ADE20K's label
channels are permuted: SDM maps annotation k to channel k - 1 and 0 ('other') to the last channel, condgen
feeds the raw ids (channel k = id k). COCO-Stuff (182 classes + unlabelled + edges), Cityscapes (35 labelIds
+ edges) and CelebAMask-HQ (19 classes + edges) are in condgen's order already. The run's G holds the EMA
weights when given (and `ema` too), else the raw ones; sampling defaults are the README's (1000 DDPM steps,
guidance 1.5).
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor, nn

from condgen.convert.keys import load_official_state, read_state_dict
from condgen.data.oasis_labels import permute_dim
from condgen.data.spec import DataSpec
from condgen.networks.sdm_unet import SDMUNet

# dataset_mode -> condgen's DataSpec fields with the same channels (the original's num_classes / edges)
DATASETS: dict[str, dict] = {
    "ade20k": dict(label_nc=150, contain_dontcare_label=True, instance_edges=False),
    "coco": dict(label_nc=182, contain_dontcare_label=True, instance_edges=True),
    "cityscapes": dict(label_nc=35, contain_dontcare_label=False, instance_edges=True, aspect_ratio=2.0),
    "celeba": dict(label_nc=19, contain_dontcare_label=False, instance_edges=True),
}


@dataclass
class SDMConfig:
    """The architecture an original SDM command line describes (its defaults where a flag is absent)."""

    dataset_mode: str | None
    num_classes: int
    no_instance: bool
    image_size: int
    unet: dict = field(default_factory=dict)  # SDMUNet keyword arguments
    diffusion: dict = field(default_factory=dict)

    @property
    def cond_nc(self) -> int:
        return self.num_classes + (0 if self.no_instance else 1)

    def spec(self) -> DataSpec:
        if self.dataset_mode is None:  # no dataset: the label map as the flags give it
            return DataSpec(self.num_classes, instance_edges=not self.no_instance, crop_size=self.image_size)
        fields = dict(DATASETS[self.dataset_mode])
        aspect = fields.pop("aspect_ratio", 1.0)
        spec = DataSpec(**fields, crop_size=round(self.image_size * aspect), aspect_ratio=aspect)
        if spec.semantic_nc != self.cond_nc:
            raise ValueError(f"--dataset_mode {self.dataset_mode} has {spec.semantic_nc} condition channels "
                             f"in condgen, the flags give {self.cond_nc} (--num_classes {self.num_classes}, "
                             f"--no_instance {self.no_instance}); check the flags")
        return spec


def _bool(v: str) -> bool:
    if v.lower() in ("true", "1", "yes"):
        return True
    if v.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {v!r}")


def parse_sdm_flags(flags: str) -> SDMConfig:
    """The original's model flags (README / scripts); other flags (batch, lr, ...) are ignored."""
    p = argparse.ArgumentParser(prog="SDM flags", add_help=False)
    p.add_argument("--dataset_mode", choices=sorted(DATASETS), default=None)
    p.add_argument("--num_classes", type=int, required=True)
    p.add_argument("--no_instance", type=_bool, default=False)
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--num_channels", type=int, default=128)
    p.add_argument("--num_res_blocks", type=int, default=2)
    p.add_argument("--channel_mult", default="")
    p.add_argument("--attention_resolutions", default="16,8")
    p.add_argument("--num_head_channels", type=int, default=-1)
    p.add_argument("--num_heads", type=int, default=4)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--learn_sigma", type=_bool, default=False)
    p.add_argument("--diffusion_steps", type=int, default=1000)
    p.add_argument("--noise_schedule", default="linear")
    for name in ("--resblock_updown", "--use_scale_shift_norm"):
        p.add_argument(name, type=_bool, default=True)
    args, _ = p.parse_known_args(shlex.split(flags))
    if not (args.resblock_updown and args.use_scale_shift_norm):
        raise ValueError("SDMUNet builds --resblock_updown True --use_scale_shift_norm True (every released "
                         "model); these flags ask for another architecture")
    mult = None  # guided-diffusion's default for the image size
    if args.channel_mult:
        mult = tuple(float(m) if "." in m else int(m) for m in args.channel_mult.split(","))
    unet = dict(crop_size=args.image_size, model_channels=args.num_channels, channel_mult=mult,
                num_res_blocks=args.num_res_blocks,
                attention_resolutions=tuple(int(r) for r in args.attention_resolutions.split(",")),
                num_head_channels=args.num_head_channels, num_heads=args.num_heads, dropout=args.dropout,
                learn_sigma=args.learn_sigma)
    return SDMConfig(args.dataset_mode, args.num_classes, args.no_instance, args.image_size, unet,
                     dict(noise_schedule=args.noise_schedule, steps=args.diffusion_steps))


def to_condgen_channels(state: dict[str, Tensor], cfg: SDMConfig) -> dict[str, Tensor]:
    """ADE20K: every SPADE group norm's first conv reads channel k of condgen's map (raw id k) where the
    original read channel k - 1 (id 0 at the last channel)."""
    if cfg.dataset_mode != "ade20k":
        return dict(state)
    n = cfg.num_classes
    perm = [(j - 1) % n for j in range(n)]
    return {k: permute_dim(v, perm, 1) if k.endswith("mlp_shared.0.weight") else v for k, v in state.items()}


def load_sdm(flags: str, state: dict[str, Tensor] | str | Path, *, channel_order: str = "condgen") -> SDMUNet:
    """An `SDMUNet` (eval mode) with a released state dict loaded strictly (`channel_order='sdm'`: the
    original's label-channel order, for parity checks)."""
    cfg = parse_sdm_flags(flags)
    spec = cfg.spec()
    net = SDMUNet(cfg.cond_nc, **{**cfg.unet, "crop_size": spec.crop_size, "aspect_ratio": spec.aspect_ratio})
    state = dict(read_state_dict(state, "SDM UNet"))
    if channel_order == "condgen":
        state = to_condgen_channels(state, cfg)
    return load_official_state(net, state, what="SDM UNet").eval()


def sdm_config_gin(cfg: SDMConfig, flags: str) -> str:
    """Gin bindings that rebuild the converted UNet through `build_gan` and sample as the README does."""
    s, u = cfg.spec(), cfg.unet
    lines = [
        "# Converted from a released SDM checkpoint by `python -m condgen.convert sdm`.",
        f"# Original flags: {flags}",
        "build_gan.generator = @SDMUNet",
        "build_gan.discriminator = None",
        "build_gan.encoder = None",
        "train.objective = @SDMObjective",
        *(f"SDMUNet.{k} = {v!r}" for k, v in u.items() if k != "crop_size"),
        f"SDMUNet.noise_schedule = {cfg.diffusion['noise_schedule']!r}",
        f"SDMUNet.diffusion_steps = {cfg.diffusion['steps']}",
        "SDMUNet.sample_steps = 1000",
        "SDMUNet.sample_method = 'ddpm'",
        "SDMUNet.guidance = 1.5",
        f"DataSpec.label_nc = {s.label_nc}",
        f"DataSpec.contain_dontcare_label = {s.contain_dontcare_label}",
        f"DataSpec.instance_edges = {s.instance_edges}",
        f"DataSpec.crop_size = {s.crop_size}",
        f"DataSpec.aspect_ratio = {s.aspect_ratio}",
    ]
    return "\n".join(lines) + "\n"


def _newest(folder: Path, pattern: str, which: str) -> Path | None:
    """The checkpoint file of step `which` (or the highest step for 'latest') matching `pattern`."""
    found = {}
    for f in folder.glob("*.pt"):
        m = re.fullmatch(pattern, f.name)
        if m:
            found[int(m.group(1))] = f
    if not found:
        return None
    return found.get(int(which)) if which != "latest" else found[max(found)]


def convert_main(flags: str, checkpoint_dir: Path, which: str, out: Path) -> int:
    """`python -m condgen.convert sdm ...`: a run dir with G (the EMA weights when present) and `ema`."""
    from condgen.convert.export import write_run_dir

    ema_file = _newest(checkpoint_dir, r"ema_0\.9999_(\d+)\.pt", which)
    raw_file = _newest(checkpoint_dir, r"model(\d+)\.pt", which)
    if ema_file is None and raw_file is None:
        files = sorted(f.name for f in checkpoint_dir.glob("*.pt")) if checkpoint_dir.is_dir() else []
        found = ", ".join(files)
        print(f"error: no ema_0.9999_<step>.pt or model<step>.pt (step {which}) in {checkpoint_dir} (found: "
              f"{found or 'no .pt files'}); check --checkpoint_dir and --which_epoch", file=sys.stderr)
        return 2
    cfg = parse_sdm_flags(flags)
    nets: dict[str, nn.Module] = {}
    if ema_file is not None:
        nets["G"] = nets["ema"] = load_sdm(flags, ema_file)
    if raw_file is not None and ema_file is None:
        nets["G"] = load_sdm(flags, raw_file)
    meta = {"repo": "sdm", "flags": flags, "loaded": {"ema": str(ema_file) if ema_file else None,
                                                      "model": str(raw_file) if raw_file else None},
            "G_is": "EMA" if ema_file is not None else "model", "channel_order": "condgen"}
    path = write_run_dir(out, nets, sdm_config_gin(cfg, flags), cfg.spec(), meta)
    print(f"wrote {path} (networks: {', '.join(nets)}; G = the {meta['G_is']} weights)")
    return 0
