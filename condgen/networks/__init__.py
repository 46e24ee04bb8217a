"""Networks: generators, discriminators, the VAE style encoder."""

from condgen.networks import (  # noqa: F401
    ccfpse_generator,
    fpse_discriminator,
    generator,
    patch_discriminator,
    spade_generator,
    vae_encoder,
)
