"""Building blocks: norms, SPADE, conditional convolution, condition sources."""

from condgen.blocks import cond_conv, condition, norm, semantic_embedding, spade, weight_pyramid  # noqa: F401
