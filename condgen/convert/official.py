"""Official NVlabs/SPADE and xh-liu/CC-FPSE command lines and checkpoints -> condgen networks.

`load_official(repo, flags, G=..., D=..., E=...)` reads the official command line (every architecture flag
and the `--dataset_mode` defaults of the official option parsers are honoured), builds the condgen networks
with the same architecture and loads the official state dicts strictly (every key and shape checked).
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
from typing import Any

from torch import Tensor, nn

from condgen.convert.keys import load_official_state, read_state_dict
from condgen.data.spec import DataSpec

REPOS = ("spade", "ccfpse", "clade")  # clade: tzt101/CLADE, a SPADE fork (--norm_mode, --add_dist)

# Defaults the official dataset classes set through `modify_commandline_options` (reference §1.11).
# Explicit flags override them, as in the official parsers.
_DEFAULT_FLAGS = (
    "label_nc", "contain_dontcare_label", "no_instance", "crop_size", "load_size", "aspect_ratio",
    "preprocess_mode",
)  # fmt: skip
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    name: dict(zip(_DEFAULT_FLAGS, values, strict=True), **extra)
    for name, values, extra in (
        # the values in _DEFAULT_FLAGS order, then the flags only one dataset sets
        ("coco", (182, True, False, 256, 286, 1.0, "resize_and_crop"), {}),
        ("ade20k", (150, True, True, 256, 286, 1.0, "resize_and_crop"), {}),
        ("cityscapes", (35, False, False, 512, 512, 2.0, "fixed"), {"num_upsampling_layers": "more"}),
        ("custom", (13, False, False, 256, 286, 1.0, "resize_and_crop"), {}),
        ("facades", (13, False, True, 256, 286, 1.0, "resize_and_crop"), {}),
    )
}

# Flags that do not change any network; accepted silently.
_NON_ARCH_FLAGS = (
    "--name",
    "--gpu_ids",
    "--checkpoints_dir",
    "--model",
    "--phase",
    "--batchSize",
    "--dataroot",
    "--label_dir",
    "--image_dir",
    "--instance_dir",
    "--which_epoch",
    "--nThreads",
    "--results_dir",
    "--how_many",
    "--display_winsize",
    "--max_dataset_size",
    "--dist_url",
    "--ngpus_per_node",
    "--niter",
    "--niter_decay",
    "--lr",
    "--beta1",
    "--beta2",
    "--lambda_feat",
    "--lambda_vgg",
    "--lambda_kld",
    "--gan_mode",
    "--init_type",
    "--init_variance",
    "--output_nc",
    "--nef",
    "--save_epoch_freq",
    "--save_latest_freq",
    "--print_freq",
    "--display_freq",
    "--load_from_opt_file",
)
_NON_ARCH_SWITCHES = (
    "--serial_batches",
    "--no_flip",
    "--no_pairing_check",
    "--isTrain",
    "--continue_train",
    "--no_TTUR",
    "--no_ganFeat_loss",
    "--no_vgg_loss",
    "--mpdist",
    "--coco_no_portraits",
    "--tf_log",
    "--debug",
    "--cache_filelist_read",
    "--cache_filelist_write",
    "--no_html",
)


@dataclass
class OfficialConfig:
    """The architecture an official command line describes, in condgen terms."""

    repo: str
    spec: DataSpec
    generator: str
    generator_kwargs: dict[str, Any] = field(default_factory=dict)
    discriminator: str = "MultiscalePatchDiscriminator"
    discriminator_kwargs: dict[str, Any] = field(default_factory=dict)
    use_vae: bool = False
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)


def _norm_string(text: str, what: str) -> tuple[bool, str, int]:
    """Official norm string -> (spectral, param-free norm, kernel size).

    'spectralspadesyncbatch3x3' -> (True, 'syncbatch', 3); 'spectralinstance' -> (True, 'instance', 0).
    """
    spectral = text.startswith("spectral")
    rest = text[len("spectral") :] if spectral else text
    m = re.fullmatch(r"spade(\D+)(\d+)x\d+", rest)
    if m:
        return spectral, m.group(1), int(m.group(2))
    if rest in ("instance", "batch", "syncbatch", "sync_batch", "none", ""):
        return spectral, rest.replace("sync_batch", "syncbatch") or "none", 0
    raise ValueError(
        f"cannot read {what} {text!r}; expected e.g. 'spectralspadesyncbatch3x3' or 'spectralinstance'"
    )


def parse_official_flags(repo: str, flags: str | Sequence[str]) -> OfficialConfig:
    """Read an official command line (string or argv list) into an `OfficialConfig`."""
    if repo not in REPOS:
        raise ValueError(f"repo must be one of {', '.join(REPOS)}, got {repo!r}")
    argv = shlex.split(flags) if isinstance(flags, str) else list(flags)
    p = argparse.ArgumentParser(prog=f"official {repo} flags", add_help=False)
    p.add_argument("--dataset_mode", default="coco")
    for name in ("label_nc", "ngf", "ndf", "crop_size", "load_size", "z_dim", "num_D", "n_layers_D"):
        p.add_argument(f"--{name}", type=int)
    p.add_argument("--aspect_ratio", type=float)
    for name in ("contain_dontcare_label", "no_instance", "use_vae", "add_dist"):
        p.add_argument(f"--{name}", action="store_true", default=None)
    for name in ("netG", "netD", "norm_G", "norm_D", "norm_E", "num_upsampling_layers", "preprocess_mode",
                 "norm_mode"):
        p.add_argument(f"--{name}")
    for name in _NON_ARCH_FLAGS:
        p.add_argument(name)
    for name in _NON_ARCH_SWITCHES:
        p.add_argument(name, action="store_true")
    args, unknown = p.parse_known_args(argv)
    if unknown:
        warnings.warn(
            f"ignoring official flags that condgen does not know: {' '.join(unknown)}", stacklevel=2
        )

    mode = args.dataset_mode
    if mode not in DATASET_DEFAULTS:
        raise ValueError(
            f"--dataset_mode {mode!r} is not an official dataset mode; "
            f"choose one of {', '.join(DATASET_DEFAULTS)}"
        )
    o = dict(DATASET_DEFAULTS[mode])
    o.setdefault("num_upsampling_layers", "normal")
    for k, v in vars(args).items():
        if v is not None and k in (
            "label_nc",
            "crop_size",
            "load_size",
            "aspect_ratio",
            "contain_dontcare_label",
            "no_instance",
            "num_upsampling_layers",
            "preprocess_mode",
        ):
            o[k] = v
    ngf, ndf = args.ngf or 64, args.ndf or 64
    z_dim, use_vae = args.z_dim or 256, bool(args.use_vae)
    spec = DataSpec(
        label_nc=o["label_nc"],
        contain_dontcare_label=bool(o["contain_dontcare_label"]),
        instance_edges=not o["no_instance"],
        crop_size=o["crop_size"],
        aspect_ratio=o["aspect_ratio"],
    )

    netG = (args.netG or ("condconv" if repo == "ccfpse" else "spade")).lower()
    common = dict(
        crop_size=spec.crop_size, aspect_ratio=spec.aspect_ratio, ngf=ngf, z_dim=z_dim, use_vae=use_vae
    )
    norm_mode = args.norm_mode or ("clade" if repo == "clade" else "spade")
    if norm_mode not in ("spade", "clade") or (norm_mode == "clade" and repo != "clade"):
        raise ValueError(f"--norm_mode {norm_mode!r}: only the CLADE code base (repo 'clade') has "
                         "'clade'; choose 'spade' or 'clade'")
    if args.add_dist and norm_mode != "clade":
        raise ValueError("--add_dist (ICPE) needs --norm_mode clade")
    if netG == "spade" and norm_mode == "clade":
        spectral, param_free, _ = _norm_string(args.norm_G or "spectralspadesyncbatch3x3", "--norm_G")
        gen = "CLADEICPEGenerator" if args.add_dist else "CLADEGenerator"
        gkw = dict(common, num_upsampling_layers=o["num_upsampling_layers"], norm_param_free=param_free,
                   spectral=spectral, instance_edge=spec.instance_edges, icpe=bool(args.add_dist))
    elif netG == "spade":
        spectral, param_free, k = _norm_string(args.norm_G or "spectralspadesyncbatch3x3", "--norm_G")
        gen, gkw = (
            "SPADEGenerator",
            dict(
                common,
                num_upsampling_layers=o["num_upsampling_layers"],
                norm_param_free=param_free,
                norm_kernel_size=k,
                spectral=spectral,
            ),
        )
    elif netG in ("condconv", "dyconvcontext4coco", "dyconvcontext4"):
        # The official CC-FPSE has no num_upsampling_layers option: 'more' iff cityscapes (reference §2.1).
        gen, gkw = (
            "CCFPSEGenerator",
            dict(common, num_upsampling_layers="more" if mode == "cityscapes" else "normal"),
        )
    else:
        raise ValueError(f"--netG {netG!r} is not supported; condgen converts 'spade' and 'condconv'")

    netD = (args.netD or ("fpse" if repo == "ccfpse" else "multiscale")).lower()
    d_spectral, d_norm, _ = _norm_string(args.norm_D or "spectralinstance", "--norm_D")
    if netD == "multiscale":
        disc, dkw = (
            "MultiscalePatchDiscriminator",
            dict(ndf=ndf, num_D=args.num_D or 2, n_layers=args.n_layers_D or 4),
        )
    elif netD == "fpse":
        disc, dkw = "FPSEDiscriminator", dict(ndf=ndf)
    else:
        raise ValueError(f"--netD {netD!r} is not supported; condgen converts 'multiscale' and 'fpse'")
    if (d_spectral, d_norm) != (True, "instance"):
        raise ValueError(f"--norm_D {args.norm_D!r}: only the official 'spectralinstance' is supported")
    if args.norm_E and _norm_string(args.norm_E, "--norm_E")[:2] != (True, "instance"):
        raise ValueError(f"--norm_E {args.norm_E!r}: only the official 'spectralinstance' is supported")
    return OfficialConfig(
        repo=repo,
        spec=spec,
        generator=gen,
        generator_kwargs=gkw,
        discriminator=disc,
        discriminator_kwargs=dkw,
        use_vae=use_vae,
        encoder_kwargs=dict(
            ngf=ngf,
            z_dim=z_dim,
            crop_size=spec.crop_size,
            official_resize=True,
            aspect_ratio=spec.aspect_ratio,
        ),
    )


def _generator_args(cfg: OfficialConfig) -> tuple[type[nn.Module], dict[str, Any]]:
    from condgen.registry import get

    kw = dict(cfg.generator_kwargs)
    if cfg.generator == "SPADEGenerator":
        from condgen.blocks.spade import SPADE, SPADEResBlock

        param_free, k, spectral = kw.pop("norm_param_free"), kw.pop("norm_kernel_size"), kw.pop("spectral")
        norm = partial(SPADE, param_free=param_free, kernel_size=k)
        kw["block"] = partial(SPADEResBlock, norm=norm, spectral=spectral)
    elif cfg.generator in ("CLADEGenerator", "CLADEICPEGenerator"):
        from condgen.blocks.clade import CLADE, CLADEResBlock

        norm = partial(CLADE, param_free=kw.pop("norm_param_free"), instance_edge=kw.pop("instance_edge"),
                       icpe=kw.pop("icpe"))
        kw["block"] = partial(CLADEResBlock, norm=norm, spectral=kw.pop("spectral"))
    return get(cfg.generator, "generator").cls, kw


def build_official(cfg: OfficialConfig) -> dict[str, nn.Module]:
    """Freshly initialised condgen networks with the official architecture described by `cfg`."""
    from condgen.registry import get

    gen_cls, gkw = _generator_args(cfg)
    nets = {
        "G": gen_cls(cfg.spec.semantic_nc, **gkw),
        "D": get(cfg.discriminator, "discriminator").cls(cfg.spec.semantic_nc, **cfg.discriminator_kwargs),
    }
    if cfg.use_vae:
        nets["E"] = get("VAEEncoder", "encoder").cls(**cfg.encoder_kwargs)
    return nets


def official_renames(net: nn.Module) -> dict[str, str | None]:
    """The prefix rename table a network class declares for official checkpoints (empty if none)."""
    return dict(getattr(type(net), "OFFICIAL_RENAMES", {}))


def load_official(
    repo: str,
    flags: str | Sequence[str],
    G: Mapping[str, Tensor] | str | Path | None = None,
    D: Mapping[str, Tensor] | str | Path | None = None,
    E: Mapping[str, Tensor] | str | Path | None = None,
) -> dict[str, nn.Module]:
    """Build condgen networks from an official command line and load official weights strictly.

    Args:
        repo: 'spade' (NVlabs/SPADE) or 'ccfpse' (xh-liu/CC-FPSE).
        flags: the official command line, a string or an argv list.
        G, D, E: a state dict, a path to `*_net_{G,D,E}.pth`, or None (then that network stays freshly
            initialised).
            E exists only with `--use_vae`.
    Returns:
        `{'G': ..., 'D': ..., 'E': ...}` (E only with `--use_vae`), in eval mode.
    """
    cfg = parse_official_flags(repo, flags)
    nets = build_official(cfg)
    if E is not None and "E" not in nets:
        raise ValueError("an E checkpoint was given but the flags have no --use_vae; add --use_vae")
    for name, source in (("G", G), ("D", D), ("E", E)):
        if source is None:
            continue
        net = nets[name]
        state = read_state_dict(source, f"official {name}")
        load_official_state(net, state, official_renames(net), what=f"{repo} net{name}")
    return {k: v.eval() for k, v in nets.items()}
