"""Networks: generators, discriminators, the VAE style encoder."""

from condgen.networks import (  # noqa: F401
    ccfpse_generator,
    clade_generator,
    dpgan,
    fpse_discriminator,
    generator,
    oasis_discriminator,
    oasis_generator,
    patch_discriminator,
    sdm_unet,
    sean_generator,
    spade_generator,
    vae_encoder,
)
