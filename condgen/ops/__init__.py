"""Parameter-free tensor ops."""

from condgen.ops.cond_depthwise import cond_depthwise_conv2d
from condgen.ops.label_conv import cat_labels, conv_labels, label_conv2d, label_layout, use_label_sparse

__all__ = ["cat_labels", "cond_depthwise_conv2d", "conv_labels", "label_conv2d", "label_layout",
           "use_label_sparse"]
