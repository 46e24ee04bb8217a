"""Reading label maps, instance maps and photos with one clear `DataError` per kind of bad file.

Label maps must be single-channel integer ids (PIL modes L, P, I, I;16, 1), as in the official loaders;
RGB colour masks, lossy JPEG labels and unreadable files are rejected with the file named and the fix.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from condgen.data.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
LABEL_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff")  # lossless only: JPEG blurs the ids
ID_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L", "1")


def natural_key(path: str | Path) -> list:
    """Sort key that orders `img2` before `img10` (the official lists are natural-sorted)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(path))]


def list_files(folder: Path, extensions: tuple[str, ...], *, recursive: bool = False) -> list[Path]:
    """Files in `folder` with one of `extensions` (case-insensitive), natural-sorted."""
    pattern = folder.rglob("*") if recursive else folder.iterdir()
    return sorted((p for p in pattern if p.is_file() and p.suffix.lower() in extensions), key=natural_key)


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode an image file, turning every PIL/OS failure into a `DataError`."""
    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; restore it or rebuild the dataset", path) from None
    except Image.DecompressionBombError as err:  # not an OSError: PIL refuses to decode it at all
        raise DataError(
            f"{path}: the image is too large to decode ({err}); if it is a genuine photo, resize it, or "
            "raise PIL.Image.MAX_IMAGE_PIXELS in your own script before training",
            path,
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(
            f"{path}: unreadable or corrupt image ({type(err).__name__}: {err}); "
            "re-download or re-export it, or delete it together with its paired files",
            path,
        ) from None
    return img


def check_label_mode(img: Image.Image, path: str | Path, what: str = "label map") -> None:
    """Raise unless `img` stores one integer id per pixel."""
    if img.mode in ID_MODES:
        return
    if img.mode in ("RGB", "RGBA"):
        arr = np.asarray(img)[..., :3]
        if (arr == arr[..., :1]).all():
            fix = (
                "it is grey but stored as RGB; re-save it single-channel: Image.open(p).convert('L').save(p)"
            )
        else:
            n = len(np.unique(arr.reshape(-1, 3), axis=0))
            fix = (
                f"it looks like a colour visualisation ({n} distinct colours); map each colour to its "
                "class id and save a single-channel (mode 'L') PNG"
            )
        raise DataError(
            f"{path}: {what} is an {img.mode} image, expected one class id per pixel; {fix}", path
        )
    raise DataError(
        f"{path}: {what} has PIL mode {img.mode!r}, expected single-channel integer ids "
        f"({', '.join(ID_MODES)}); convert it to an 8-bit mode 'L' PNG of class ids",
        path,
    )


def read_label(path: str | Path) -> Image.Image:
    """A label map as a PIL image of integer ids (mode L/P/I/1 unchanged; 16-bit widened to 'I')."""
    path = Path(path)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        raise DataError(
            f"{path}: label maps must be lossless (PNG); JPEG compression changes the ids at every edge. "
            "Re-export the labels as PNG",
            path,
        )
    img = open_image(path)
    check_label_mode(img, path)
    return _widen(img)


def read_instance(path: str | Path) -> Image.Image:
    """An instance map (any integer mode; Cityscapes' 16-bit `instanceIds` included)."""
    img = open_image(path)
    check_label_mode(img, path, what="instance map")
    return _widen(img)


def read_image(path: str | Path) -> Image.Image:
    """A photo converted to RGB (greyscale and palette photos are expanded, as the official loader does)."""
    img = open_image(path)
    return img if img.mode == "RGB" else img.convert("RGB")


def _widen(img: Image.Image) -> Image.Image:
    # 16-bit and 1-bit maps become 32-bit 'I' so PIL's NEAREST resize and numpy see plain integers.
    if img.mode in ("L", "P", "I"):
        return img
    return Image.fromarray(np.asarray(img).astype(np.int32))
