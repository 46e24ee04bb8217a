"""Losses: GAN (hinge/ls/original), feature matching, VGG19 perceptual, KL divergence."""

from condgen.losses import feature_matching, gan, kl, perceptual  # noqa: F401
