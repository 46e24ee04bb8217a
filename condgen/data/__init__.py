"""Datasets, label encoding and the DataSpec that fixes network shapes.

Importing this package registers the datasets (kind "dataset"): `CocoStuff`, `ADE20K`, `Cityscapes`,
`CustomFolder` and `SyntheticLandscapes`, the embedded default.
"""

from condgen.data.ade20k import ADE20K
from condgen.data.cityscapes import Cityscapes
from condgen.data.coco import CocoStuff
from condgen.data.custom import CustomFolder
from condgen.data.errors import DataError
from condgen.data.folder import FolderDataset
from condgen.data.labels import encode_labels, get_edges, semantic_nc
from condgen.data.landscapes import SyntheticLandscapes, export_landscapes, landscape
from condgen.data.miniature import make_miniature
from condgen.data.spec import DataSpec
from condgen.data.validate import DataReport, check_data
from condgen.data.visualize import colorize, default_palette

__all__ = [
    "ADE20K",
    "Cityscapes",
    "CocoStuff",
    "CustomFolder",
    "DataError",
    "DataReport",
    "DataSpec",
    "FolderDataset",
    "SyntheticLandscapes",
    "check_data",
    "colorize",
    "default_palette",
    "encode_labels",
    "export_landscapes",
    "get_edges",
    "landscape",
    "make_miniature",
    "semantic_nc",
]
