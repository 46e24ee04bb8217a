"""Small shared helpers: nothing model-specific lives here."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, Union

from torch import nn

T = TypeVar("T")

# A layer given by name ("instance"), by class, or by a partial/callable building it.
LayerType = Union[str, type[nn.Module], Callable[..., nn.Module]]


def default(value: T | None, fallback: T | Callable[[], T]) -> T:
    """`value` unless it is None; then `fallback` (called if callable)."""
    if value is not None:
        return value
    return fallback() if callable(fallback) else fallback


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (buffers excluded), as the papers and official code count them."""
    return sum(p.numel() for p in module.parameters())
