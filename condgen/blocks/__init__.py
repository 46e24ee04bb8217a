"""Building blocks: norms, SPADE, conditional convolution, condition sources."""

from condgen.blocks import (  # noqa: F401
    clade,
    cond_conv,
    condition,
    label_pyramid,
    noise,
    norm,
    sdm,
    sean,
    semantic_embedding,
    spade,
    weight_pyramid,
)
