"""Parameter-free tensor ops."""

from condgen.ops.cond_depthwise import cond_depthwise_conv2d

__all__ = ["cond_depthwise_conv2d"]
