"""The segmenter registry: which network scores mIoU for which dataset, under which named protocol.

Each `SegmenterSpec` states the facts that papers leave implicit (SPADE #39, #100, OASIS #5, #18): the
weight files, the map from the dataset's label ids to the segmenter's classes, the ignore id, and its named
`SegProtocol`s: the size the image is fed at, which labels it is scored against (the map at the generated
resolution or the original full-resolution file), the preprocessing and the class-averaging rule. Papers
disagree on all of these, and the numbers move by 1-4 mIoU with them; the protocol used is recorded in
every metrics file. `load_segmenter("name[:protocol]")` returns a `Segmenter`; its `confusion(images,
labels)` applies the protocol to images in [-1, 1] (generated or real: the real-image upper bound goes
through the same protocol). Entries:
- `landscape`: `LandscapeSegmenter`, trained here on real synthetic landscapes (cached, no download);
- `deeplabv2_cocostuff` (protocols `ccfpse`, `fullres`, `imaginaire`), `upernet101_ade20k` (`csail`,
  `csail2019`), `drn_d105_cityscapes` (`2048x1024`, `512x256`): the paper segmenters as condgen networks
  (`condgen.networks.segmenters`) loading the released weight files, which load never downloads: a missing
  file is an error naming it, its URL, its size, where to put it and the `condgen weights fetch` command.
  `load_segmenter_network(name, weights)` gives the bare network (raw logits at its own resolution).

One file per dataset holds its entry (label remap, named protocols, weight files, network builder) and
registers it: `landscape.py`, `coco.py`, `ade20k.py`, `cityscapes.py`; `protocol.py` has `SegProtocol` and the
preprocessing, `registry.py` the registry, `Segmenter`, `load_segmenter` and `load_segmenter_network`.
A new dataset's segmenter is one more such file (or a `register_segmenter` call in user code).
"""

from condgen.eval.segmenters.protocol import (
    DEEPLAB_MEAN_BGR,
    DEFAULT_PROTOCOL,
    DRN_MEAN_STD_RGB,
    IGNORE,
    IMAGE_SIZES,
    PREPROCESS,
    UPERNET_MEAN_BGR_2019,
    UPERNET_MEAN_STD_RGB,
    SegProtocol,
    csail_size,
    preprocess_deeplab,
    preprocess_drn,
    preprocess_upernet,
    preprocess_upernet_2019,
    resize_uint8,
    upernet_valdataset,
)
from condgen.eval.segmenters.registry import (
    SEGMENTERS,
    Segmenter,
    SegmenterSpec,
    WeightsArg,
    get_segmenter,
    load_segmenter,
    load_segmenter_network,
    register_segmenter,
    segmenter_for,
    split_name,
)

# the entries, in the order `condgen weights` lists their files
from condgen.eval.segmenters import landscape, coco, ade20k, cityscapes  # noqa: E402, I001  isort: skip
from condgen.eval.segmenters.ade20k import ADE20K_PROTOCOLS, upernet_network
from condgen.eval.segmenters.cityscapes import CITYSCAPES_PROTOCOLS, CITYSCAPES_TRAIN_IDS, drn_network
from condgen.eval.segmenters.coco import COCO_PROTOCOLS, deeplabv2_network

# the entries with a released network (`load_segmenter_network`)
PAPER_NETWORKS = tuple(name for name, spec in SEGMENTERS.items() if spec.network is not None)

__all__ = [
    "ADE20K_PROTOCOLS",
    "CITYSCAPES_PROTOCOLS",
    "CITYSCAPES_TRAIN_IDS",
    "COCO_PROTOCOLS",
    "DEEPLAB_MEAN_BGR",
    "DEFAULT_PROTOCOL",
    "DRN_MEAN_STD_RGB",
    "IGNORE",
    "IMAGE_SIZES",
    "PAPER_NETWORKS",
    "PREPROCESS",
    "SEGMENTERS",
    "UPERNET_MEAN_BGR_2019",
    "UPERNET_MEAN_STD_RGB",
    "SegProtocol",
    "Segmenter",
    "SegmenterSpec",
    "WeightsArg",
    "ade20k",
    "cityscapes",
    "coco",
    "csail_size",
    "deeplabv2_network",
    "drn_network",
    "get_segmenter",
    "landscape",
    "load_segmenter",
    "load_segmenter_network",
    "preprocess_deeplab",
    "preprocess_drn",
    "preprocess_upernet",
    "preprocess_upernet_2019",
    "register_segmenter",
    "resize_uint8",
    "segmenter_for",
    "split_name",
    "upernet_network",
    "upernet_valdataset",
]
