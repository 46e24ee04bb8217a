"""Building blocks: norms, SPADE, conditional convolution, condition sources."""

from condgen.blocks import (  # noqa: F401
    cond_conv,
    condition,
    noise,
    norm,
    sean,
    semantic_embedding,
    spade,
    weight_pyramid,
)
