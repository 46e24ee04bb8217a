"""Size checks for label maps and photos that are resized on their way in, so that no resize is silent.

`fit_size` decides what happens to one label map given to a trained model (`synthesize`): same size, a
rescale (allowed, reported), or an aspect-ratio change (refused unless asked for: squashing a 96x128 map to
64x64 distorts every shape). `upscaled_sizes` finds the files that training will enlarge because they are
smaller than the crop (`check-data` warns about them).
"""

from __future__ import annotations

from collections.abc import Iterable

Size = tuple[int, int]  # (width, height), as PIL gives them


class ResizeWarning(UserWarning):
    """Label maps were resized to the model's size (`resize_summary` says which and from what)."""


class AspectRatioError(ValueError):
    """A label map would be stretched to the model's aspect ratio; the message names the file and the fix."""


def same_aspect(a: Size, b: Size) -> bool:
    """Whether two (w, h) sizes have the same aspect ratio, up to rounding to whole pixels."""
    return abs(a[0] * b[1] - a[1] * b[0]) <= max(a[0], a[1], b[0], b[1])


def fit_size(size: Size, target: Size, *, source: str, resize: bool = False) -> bool:
    """Whether the (w, h) map `source` must be resized to `target`; raises `AspectRatioError` when that
    changes its aspect ratio and `resize` (`--resize`) does not allow it."""
    if tuple(size) == tuple(target):
        return False
    if not resize and not same_aspect(size, target):
        raise AspectRatioError(
            f"{source}: {size[0]}x{size[1]} pixels, but the model draws {target[0]}x{target[1]}; resizing "
            "would change its aspect ratio and distort every shape. Crop or pad it to that ratio, or pass "
            "--resize to stretch it anyway"
        )
    return True


def resize_summary(resized: dict[Size, list[str]], target: Size) -> str:
    """One line for every map resized to `target`: how many of each size, an example file of each."""
    parts = [f"{len(files)} of {w}x{h} (e.g. {files[0]})" for (w, h), files in resized.items()]
    return f"label maps resized (nearest) to the model's {target[0]}x{target[1]}: {'; '.join(parts)}"


def upscaled_sizes(sizes: Iterable[Size], crop: Size) -> list[Size]:
    """The (w, h) sizes smaller than the (w, h) crop in either side: training upscales those files."""
    return sorted({s for s in sizes if s[0] < crop[0] or s[1] < crop[1]})
