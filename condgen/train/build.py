"""`build_gan`: the networks of one experiment, built from a dataset's `DataSpec` and gin-bound classes.

Gin binds classes (`build_gan.generator = @SPADEGenerator`, never `@SPADEGenerator()`); shapes come from the
spec, so one architecture file serves every dataset. Also here: the SyncBatchNorm policy. Parameters that a
network never uses must be frozen (`requires_grad=False`, as the CC-FPSE blocks do for their official but
unused norms): DistributedDataParallel runs without `find_unused_parameters`.
"""

from __future__ import annotations

from dataclasses import dataclass

import gin
from torch import nn

from condgen.blocks.norm import SyncableBatchNorm2d
from condgen.data.spec import DataSpec
from condgen.networks.discriminator import Discriminator


@dataclass
class GAN:
    """The networks of one run. `E` is the VAE style encoder, present iff `G.use_vae`."""

    G: nn.Module
    D: nn.Module | None = None  # None for objectives that train no discriminator (diffusion)
    E: nn.Module | None = None

    @property
    def use_vae(self) -> bool:
        return self.E is not None

    def named(self) -> dict[str, nn.Module]:
        """The networks by checkpoint name, in the order they are prepared and saved (G, D, then E)."""
        return {name: net for name, net in (("G", self.G), ("D", self.D), ("E", self.E)) if net is not None}


def paper_names(gan: GAN) -> tuple[str, str]:
    """CC-FPSE Table 2 names of the generator and discriminator ('CC w/ FP', 'FP+SE', ...)."""
    G, D = gan.G, gan.D
    block = type(getattr(G, "head_0", None)).__name__
    pyramid = type(getattr(G, "condition", None)).__name__ == "FeaturePyramidCondition"
    g = {"SPADEResBlock": "SPADE", "CCResBlock": "CC"}.get(block, type(G).__name__)
    if type(G).__name__ == "OASISGenerator":
        g = "OASIS"
    elif type(getattr(G, "condition", None)).__name__ == "NoiseCondition":
        g += " + 3-D noise"
    if g == "CC":
        g += " w/ FP" if pyramid else " w/o FP"
    elif pyramid:
        g += " w/ FP"
    se = bool(getattr(D, "semantic_embedding", False))
    d = {
        "MultiscalePatchDiscriminator": "MsPatch",
        "FPSEDiscriminator": "FP",
        "OASISDiscriminator": "OASIS U-Net",
    }.get(type(D).__name__, type(D).__name__)
    return g, d + ("+SE" if se else "")


@gin.configurable
def build_gan(
    spec: DataSpec,
    generator: type[nn.Module] = gin.REQUIRED,
    discriminator: type[Discriminator] | None = gin.REQUIRED,
    encoder: type[nn.Module] | None = None,
    random_input: bool = False,
) -> GAN:
    """Build G, D (and E) for `spec`; architecture options come from their own gin bindings.

    Args:
        spec: the dataset's shapes: `semantic_nc` label channels, `crop_size`, `aspect_ratio`.
        generator: a generator class, called as `generator(semantic_nc, crop_size=, aspect_ratio=)`.
        discriminator: called as `discriminator(semantic_nc)`; it sees the image and the label map. None
            (bound explicitly) for objectives that train none (`SDMObjective`).
        encoder: the VAE style encoder class (`@VAEEncoder`); required iff the generator has `use_vae`,
            unless `random_input`.
        random_input: the generator takes z ~ N(0, I) with no encoder and no KL term (SPADE Table 4
            "random input"); needs the generator's `use_vae = True` (its z input) and no encoder.
    """
    for name, value in (("generator", generator), ("discriminator", discriminator)):
        if value is None and name == "discriminator":
            continue
        if value is gin.REQUIRED or value is None:
            raise ValueError(f"build_gan.{name} is not bound; bind `build_gan.{name} = @SomeClass` in gin")
        if not isinstance(value, type):
            raise TypeError(
                f"build_gan.{name} must be a class (bind `@{type(value).__name__}`, not "
                f"`@{type(value).__name__}()`), got an instance"
            )
    G = generator(spec.semantic_nc, crop_size=spec.crop_size, aspect_ratio=spec.aspect_ratio)
    D = discriminator(spec.semantic_nc) if discriminator is not None else None
    use_vae = bool(getattr(G, "use_vae", False))
    if random_input:
        if not use_vae or encoder is not None:
            raise ValueError(
                f"build_gan.random_input = True needs {type(G).__name__}.use_vae = True (the z input) and "
                "build_gan.encoder = None"
            )
        return GAN(G, D, None)
    if use_vae and encoder is None:
        raise ValueError(
            f"{type(G).__name__}.use_vae = True but build_gan.encoder is not bound; "
            "add `build_gan.encoder = @VAEEncoder`, set use_vae = False, or set "
            "build_gan.random_input = True (z ~ N(0, I), no encoder)"
        )
    if encoder is not None and not use_vae:
        raise ValueError(
            f"build_gan.encoder = @{encoder.__name__} but {type(G).__name__}.use_vae is False; "
            f"set `{type(G).__name__}.use_vae = True` or unbind the encoder"
        )
    E = None
    if use_vae:
        E = encoder(crop_size=spec.crop_size, aspect_ratio=spec.aspect_ratio)
        z_g, z_e = getattr(G, "z_dim", None), getattr(E, "z_dim", None)
        if z_e is None:  # encoders expose z_dim through their heads
            z_e = getattr(getattr(E, "fc_mu", None), "out_features", None)
        if z_g is not None and z_e is not None and z_g != z_e:
            raise ValueError(
                f"the encoder outputs z_dim={z_e} but {type(G).__name__}.z_dim = {z_g}; bind both the same"
            )
    return GAN(G, D, E)


def convert_sync_batchnorm(module: nn.Module, *, device_type: str, num_processes: int) -> nn.Module:
    """Turn the `syncbatch` norms (`SyncableBatchNorm2d`) into `nn.SyncBatchNorm`, on CUDA with > 1 process.

    SyncBatchNorm has no CPU kernel and needs a process group, so elsewhere they stay per-process
    BatchNorm2d (then BN statistics are those of each process's batch). Plain 'batch' norms are left alone.
    Parameters are reused, not copied, so optimisers built before or after stay valid; state is preserved.
    """
    if device_type != "cuda" or num_processes <= 1:
        return module
    if isinstance(module, SyncableBatchNorm2d):
        sync = nn.SyncBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        if module.affine:
            sync.weight, sync.bias = module.weight, module.bias
        sync.running_mean, sync.running_var = module.running_mean, module.running_var
        sync.num_batches_tracked = module.num_batches_tracked
        sync.train(module.training)
        return sync
    for name, child in module.named_children():
        new = convert_sync_batchnorm(child, device_type=device_type, num_processes=num_processes)
        if new is not child:
            setattr(module, name, new)
    return module
