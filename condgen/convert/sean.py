"""Original SEAN (ZPdesu/SEAN) checkpoints <-> condgen's `SEANGenerator` / `MultiscalePatchDiscriminator`.

`load_sean(flags, G=..., D=...)` reads the original's architecture options, builds the condgen networks and
loads the original state dicts strictly. Key differences, all handled here and in the classes' rename tables:
- the original's 19 per-class `fc_mu<j>` Linear layers of every style-using ACE are stacked into one
  `fc_mu.weight` (19, S, S) / `fc_mu.bias` (19, S) (all 19 are kept so that export gives them back; the
  layers of classes >= semantic_nc are never used, as in the original);
- `Zencoder.` -> `style_encoder.`, `ace_{0,1,s}` -> `norm_{0,1,s}`, `Spade.` -> `spade.`;
- the inner SPADE's batch norm (`Spade.param_free_norm.*`, built and saved but never used) is dropped; export
  writes it back at its initial values (mean 0, var 1, count 0), which is what every original file holds.
`to_original(state)` is the inverse, for handing a condgen-trained SEAN to the original code (<= 19 classes).
The discriminator is the SPADE multi-scale D with 3 layers, all of stride 2 (`last_stride=2`).
"""

from __future__ import annotations

import argparse
import re
import shlex
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn

from condgen.convert.keys import load_official_state, read_state_dict, rename_official
from condgen.convert.official import DATASET_DEFAULTS
from condgen.data.spec import DataSpec

_BLOCKS = Path(__file__).resolve().parents[1] / "gin" / "blocks"
ORIGINAL_CLASSES = 19  # the original builds fc_mu0..fc_mu18 in every style-using ACE, whatever label_nc is
_VALUE_FLAGS = {"dataset_mode": str, "label_nc": int, "crop_size": int, "aspect_ratio": float, "ngf": int,
                "ndf": int, "n_layers_D": int, "num_D": int, "num_upsampling_layers": str}
_FC_MU = re.compile(r"^(?P<ace>.+\.ace_[01s])\.fc_mu(?P<j>\d+)\.(?P<what>weight|bias)$")


@dataclass
class SEANConfig:
    """The architecture an original SEAN command line describes."""

    spec: DataSpec
    ngf: int = 64
    num_upsampling_layers: str = "normal"
    D: dict[str, int] = field(default_factory=lambda: dict(ndf=64, n_layers=3, num_D=2))  # SEAN: 3 layers

    @property
    def semantic_nc(self) -> int:
        return self.spec.semantic_nc


def parse_sean_flags(flags: str | Sequence[str]) -> SEANConfig:
    """Read the original SEAN (SPADE-style) options that shape the networks; others are ignored."""
    p = argparse.ArgumentParser(prog="original SEAN flags", add_help=False)
    for name, kind in _VALUE_FLAGS.items():
        p.add_argument(f"--{name}", type=kind)
    for name in ("contain_dontcare_label", "no_instance", "use_vae"):
        p.add_argument(f"--{name}", action="store_true", default=None)
    args, unknown = p.parse_known_args(shlex.split(flags) if isinstance(flags, str) else list(flags))
    arch = [u for u in unknown if u.split("=")[0] in ("--netG", "--norm_G", "--norm_D", "--netD")]
    if arch:
        warnings.warn(f"ignoring SEAN flags (the original hard-codes what they choose): {' '.join(arch)}",
                      stacklevel=2)
    args.dataset_mode = args.dataset_mode or "custom"  # the only mode the original has
    if args.dataset_mode not in DATASET_DEFAULTS:
        raise ValueError(f"--dataset_mode {args.dataset_mode!r}: choose one of {', '.join(DATASET_DEFAULTS)}")
    if args.use_vae:
        raise ValueError("--use_vae: SEAN has no VAE (its style encoder is part of the generator)")
    d = DATASET_DEFAULTS[args.dataset_mode]

    def pick(name: str, fallback: object = None) -> object:
        value = getattr(args, name)
        return d.get(name, fallback) if value is None else value

    spec = DataSpec(
        label_nc=int(pick("label_nc")),
        contain_dontcare_label=bool(pick("contain_dontcare_label", False)),
        instance_edges=not pick("no_instance", False),
        crop_size=int(pick("crop_size")),
        aspect_ratio=float(pick("aspect_ratio")),
    )
    return SEANConfig(
        spec,
        ngf=args.ngf or 64,
        num_upsampling_layers=str(pick("num_upsampling_layers", "normal")),
        D=dict(ndf=args.ndf or 64, n_layers=args.n_layers_D or 3, num_D=args.num_D or 2),
    )


def build_sean(
    cfg: SEANConfig,
    *,
    style_classes: int | None = ORIGINAL_CLASSES,
    style_dim: int = 512,
    encoder_widths: tuple[int, int, int, int] = (32, 64, 128, 256),
    names: tuple[str, ...] = ("G", "D"),
) -> dict[str, nn.Module]:
    """Freshly initialised condgen G and D with the architecture of `cfg` (G holding `style_classes`
    per-class MLPs per layer, at least semantic_nc: 19 for an original checkpoint; the original's style
    width 512 and encoder widths unless a checkpoint says otherwise)."""
    from condgen.blocks.sean import ACE, SEANResBlock
    from condgen.networks.patch_discriminator import MultiscalePatchDiscriminator
    from condgen.networks.sean_generator import SEANGenerator

    classes = max(style_classes or 0, cfg.semantic_nc)
    build = {
        "G": lambda: SEANGenerator(
            cfg.semantic_nc,
            crop_size=cfg.spec.crop_size,
            aspect_ratio=cfg.spec.aspect_ratio,
            ngf=cfg.ngf,
            num_upsampling_layers=cfg.num_upsampling_layers,
            style_dim=style_dim,
            encoder_widths=encoder_widths,
            block=partial(SEANResBlock, norm=partial(ACE, style_classes=classes)),
        ),
        "D": lambda: MultiscalePatchDiscriminator(cfg.semantic_nc, **cfg.D, last_stride=2),
    }
    return {name: build[name]() for name in names}


def from_original(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Original G state dict -> condgen keys (fc_mu layers stacked; every fc_mu0..N-1 must be present)."""
    from condgen.networks.sean_generator import SEANGenerator

    stacks: dict[tuple[str, str], dict[int, Tensor]] = {}
    rest = {}
    for key, value in state.items():
        m = _FC_MU.match(key)
        if m:
            stacks.setdefault((m["ace"], m["what"]), {})[int(m["j"])] = value
        else:
            rest[key] = value
    for (ace, what), layers in stacks.items():
        if sorted(layers) != list(range(len(layers))):
            missing = sorted(set(range(max(layers) + 1)) - set(layers))
            raise ValueError(
                f"SEAN checkpoint: {ace}.fc_mu{missing[0]}.{what} is missing (have {sorted(layers)})"
            )
        rest[f"{ace}.fc_mu.{what}"] = torch.stack([layers[j] for j in range(len(layers))])
    return rename_official(rest, SEANGenerator.OFFICIAL_RENAMES)


def to_original(state: Mapping[str, Tensor], *, classes: int = ORIGINAL_CLASSES) -> dict[str, Tensor]:
    """condgen `SEANGenerator` state dict -> the original's layout (at least `classes` fc_mu layers; missing
    ones are zero-filled: the original builds 19 and never uses those beyond label_nc)."""
    from condgen.networks.sean_generator import SEANGenerator

    back = {v: k for k, v in SEANGenerator.OFFICIAL_RENAMES.items() if v is not None}
    prefixes = sorted(back, key=len, reverse=True)
    sn = {"parametrizations.weight.original": "weight_orig", "parametrizations.weight.0._u": "weight_u",
          "parametrizations.weight.0._v": "weight_v"}
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        for suffix, theirs in sn.items():
            if key.endswith(suffix):
                key = key[: -len(suffix)] + theirs
        for p in prefixes:
            if key.startswith(p):
                key = back[p] + key[len(p) :]
                break
        if key.endswith((".fc_mu.weight", ".fc_mu.bias")):
            head, what = key.rsplit(".fc_mu.", 1)
            for j in range(max(classes, value.shape[0])):
                layer = value[j].clone() if j < value.shape[0] else torch.zeros_like(value[0])
                out[f"{head}.fc_mu{j}.{what}"] = layer
            continue
        out[key] = value
        if key.endswith(".Spade.mlp_gamma.bias"):  # the inner SPADE's unused norm, at its initial values
            base = key.removesuffix("mlp_gamma.bias") + "param_free_norm."
            out[base + "running_mean"] = torch.zeros_like(value)
            out[base + "running_var"] = torch.ones_like(value)
            out[base + "num_batches_tracked"] = torch.tensor(0)
    return out


def widths_of(state: Mapping[str, Tensor]) -> dict:
    """Style width, encoder widths and per-class MLP count of a (renamed) SEAN G state dict."""
    enc = [state[f"style_encoder.model.{i}.weight"] for i in (1, 4, 7, 10, 14)]
    fc_mu = next(v for k, v in state.items() if k.endswith(".fc_mu.weight"))
    return {"style_dim": enc[4].shape[0], "style_classes": fc_mu.shape[0],
            # a transposed conv's weight is (in, out, k, k)
            "encoder_widths": (enc[0].shape[0], enc[1].shape[0], enc[2].shape[0], enc[3].shape[1])}


def sean_config_gin(cfg: SEANConfig, widths: dict, flags: str) -> str:
    """Gin bindings that rebuild the converted networks through `build_gan`."""
    s = cfg.spec
    lines = [
        "# Converted from an original SEAN checkpoint by `python -m condgen.convert sean`.",
        f"# Original flags: {flags}",
        *[line for name in ("sean_generator.gin", "ms_patch_discriminator.gin")
          for line in (_BLOCKS / name).read_text().splitlines()],  # inlined: a saved config has no includes
        f"DataSpec.label_nc = {s.label_nc}",
        f"DataSpec.contain_dontcare_label = {s.contain_dontcare_label}",
        f"DataSpec.instance_edges = {s.instance_edges}",
        f"DataSpec.crop_size = {s.crop_size}",
        f"DataSpec.aspect_ratio = {s.aspect_ratio}",
        f"SEANGenerator.ngf = {cfg.ngf}",
        f"SEANGenerator.num_upsampling_layers = '{cfg.num_upsampling_layers}'",
        f"SEANGenerator.style_dim = {widths['style_dim']}",
        f"SEANGenerator.encoder_widths = {tuple(widths['encoder_widths'])}",
        f"ACE.style_classes = {widths['style_classes']}    # the original's 19 MLPs, unused beyond label_nc",
        f"MultiscalePatchDiscriminator.ndf = {cfg.D['ndf']}",
        f"MultiscalePatchDiscriminator.n_layers = {cfg.D['n_layers']}",
        f"MultiscalePatchDiscriminator.num_D = {cfg.D['num_D']}",
        "MultiscalePatchDiscriminator.last_stride = 2",
    ]
    return "\n".join(lines) + "\n"


def convert_main(flags: str, checkpoint_dir: Path, which: str, out: Path) -> int:
    """`python -m condgen.convert sean ...`: a condgen run dir from `{which}_net_G.pth` (and `_D.pth`)."""
    import sys

    from condgen.convert.export import write_run_dir

    files = {n: checkpoint_dir / f"{which}_net_{n}.pth" for n in ("G", "D")}
    if not files["G"].is_file():
        found = ", ".join(sorted(f.name for f in checkpoint_dir.glob("*.pth")))
        print(f"error: {files['G']} not found (found: {found or 'no .pth files'}); check --checkpoint_dir "
              "and --which_epoch (the released SEAN model is CelebA-HQ_pretrained/latest_net_G.pth)",
              file=sys.stderr)
        return 2
    sources = {n: (f if f.is_file() else None) for n, f in files.items()}
    nets = load_sean(flags, **sources)
    cfg = parse_sean_flags(flags)
    widths = widths_of(nets["G"].state_dict())
    meta = {"repo": "sean", "flags": flags, "loaded": {n: str(f) for n, f in sources.items() if f},
            "freshly_initialised": [n for n, f in sources.items() if f is None]}
    path = write_run_dir(out, nets, sean_config_gin(cfg, widths, flags), cfg.spec, meta)
    print(f"wrote {path} (networks: G, D; loaded: {', '.join(meta['loaded'])})")
    return 0


def load_sean(
    flags: str | Sequence[str] = "",
    G: Mapping[str, Tensor] | str | Path | None = None,
    D: Mapping[str, Tensor] | str | Path | None = None,
) -> dict[str, nn.Module]:
    """Build condgen networks from an original SEAN command line and load its weights strictly.

    Args:
        flags: the original command line, e.g. "--label_nc 19 --no_instance" (CelebAMask-HQ).
        G, D: a state dict, a path to `{which_epoch}_net_{G,D}.pth`, or None (left freshly initialised).
    Returns:
        `{'G': ..., 'D': ...}` in eval mode.
    """
    cfg = parse_sean_flags(flags)
    state = None if G is None else from_original(read_state_dict(G, "SEAN G"))
    if state is None:
        nets = build_sean(cfg)
    else:
        with torch.device("meta"):  # every value comes from the file: skip initialising 93M+ parameters
            nets = {"G": build_sean(cfg, names=("G",), **widths_of(state))["G"].to_empty(device="cpu")}
        load_official_state(nets["G"], state, what="SEAN G")
        nets["D"] = build_sean(cfg, names=("D",))["D"]
    if D is not None:
        load_official_state(nets["D"], read_state_dict(D, "SEAN D"), what="SEAN D")
    return {k: v.eval() for k, v in nets.items()}
