"""The block registry: one name space of swappable, gin-configurable building blocks.

`@register(kind)` adds a class to the registry under its own name *and* makes it `gin.configurable`
under that same name, so `@SPADE` in a gin file, `create("norm", "SPADE")` in Python and the
`python -m condgen blocks` catalogue all agree. A miss raises with the close matches of that kind.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gin

KINDS: tuple[str, ...] = (
    "norm",  # SPADE-like normalisation layers
    "condition",  # condition sources / weight predictors (plain label map, feature pyramid)
    "block",  # generator residual blocks
    "generator",
    "discriminator",
    "encoder",
    "loss",
    "dataset",
    "op",  # implementations of parameter-free ops (e.g. conditional depthwise conv)
    "objective",  # the losses of a GAN step (objectives/)
    "metric",  # evaluation metrics (eval/metrics/)
)


@dataclass(frozen=True)
class Entry:
    """One registered block: its kind, gin name, the configurable class and where it was defined."""

    kind: str
    name: str
    cls: Any
    module: str

    def signature(self) -> inspect.Signature:
        target = self.cls.__init__ if inspect.isclass(self.cls) else self.cls
        return inspect.signature(inspect.unwrap(target))

    def arguments(self) -> list[tuple[str, Any]]:
        """Constructor arguments as (name, default) pairs; `inspect.Parameter.empty` when required.

        A preset (a class whose `__init__` forwards `**kwargs` and which states its defaults in a `PRESET`
        dict) shows the arguments of the first base class that spells them out, with its own defaults.
        """
        params = list(self.signature().parameters.values())
        preset = getattr(self.cls, "PRESET", None)
        if isinstance(preset, dict) and any(p.kind is p.VAR_KEYWORD for p in params):
            for base in inspect.getmro(self.cls)[1:]:
                base_params = list(inspect.signature(inspect.unwrap(base.__init__)).parameters.values())
                if not any(p.kind is p.VAR_KEYWORD for p in base_params):
                    params = [p.replace(default=preset.get(p.name, p.default)) for p in base_params]
                    break
        return [
            (p.name, p.default)
            for p in params
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]


_REGISTRY: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
_ALL: dict[str, Entry] = {}


def register(kind: str) -> Callable[[Any], Any]:
    """Class (or function) decorator: add to the registry under `kind` and make it gin-configurable.

    The gin name is the class's own name, one name space for every kind (as in gin itself).
    """
    if kind not in _REGISTRY:
        raise ValueError(f"unknown block kind {kind!r}; kinds are {', '.join(KINDS)}")

    def add(obj: Any) -> Any:
        name = obj.__name__
        module = obj.__module__
        previous = _ALL.get(name)
        if previous is not None and previous.module != module:
            raise ValueError(
                f"block name {name!r} from {module} is already registered by {previous.module}; "
                "rename one of them (gin and the registry share one name space)"
            )
        if previous is not None:  # module re-import (e.g. importlib.reload): replace silently
            configurable = previous.cls
        else:
            configurable = gin.configurable(obj)
        entry = Entry(kind, name, configurable, module)
        _REGISTRY[kind][name] = _ALL[name] = entry
        return configurable

    return add


def _unknown(name: str, kind: str | None) -> KeyError:
    pool = _REGISTRY[kind] if kind else _ALL
    close = difflib.get_close_matches(name, list(pool), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    where = f"of kind {kind!r} " if kind else ""
    available = ", ".join(sorted(pool)) or "(none)"
    return KeyError(f"no block {name!r} {where}is registered.{hint} Available: {available}")


def get(name: str, kind: str | None = None) -> Entry:
    """Look a block up by name (optionally restricted to one kind)."""
    pool = _REGISTRY[kind] if kind else _ALL
    if kind is not None and kind not in _REGISTRY:
        raise KeyError(f"unknown block kind {kind!r}; kinds are {', '.join(KINDS)}")
    if name not in pool:
        raise _unknown(name, kind)
    return pool[name]


def create(kind: str, name: str, /, **kwargs: Any) -> Any:
    """Build a registered block: `create("generator", "SPADEGenerator", semantic_nc=184)`.

    `None` keyword values are dropped, so callers can pass optional overrides through.
    """
    entry = get(name, kind)
    return entry.cls(**{k: v for k, v in kwargs.items() if v is not None})


def list_blocks(kind: str | None = None, pattern: str | None = None) -> list[Entry]:
    """Registered blocks, sorted by kind then name; `pattern` is a shell wildcard on the name."""
    if kind is not None and kind not in _REGISTRY:
        raise KeyError(f"unknown block kind {kind!r}; kinds are {', '.join(KINDS)}")
    kinds = [kind] if kind else list(KINDS)
    out = []
    for k in kinds:
        for name in sorted(_REGISTRY[k]):
            if pattern is None or fnmatch.fnmatchcase(name, pattern):
                out.append(_REGISTRY[k][name])
    return out


def names(kind: str) -> list[str]:
    """Names registered under one kind."""
    return [e.name for e in list_blocks(kind)]


def _show(value: Any) -> str:
    """A default as a gin user would write it: `@SPADE` for classes and functions."""
    if inspect.isclass(value) or inspect.isfunction(value):
        return f"@{value.__name__}"
    return repr(value)


def format_catalogue(entries: list[Entry]) -> str:
    """Human-readable table of blocks with their constructor arguments and defaults."""
    lines: list[str] = []
    current = None
    for e in entries:
        if e.kind != current:
            current = e.kind
            lines.append(f"\n[{e.kind}]")
        args = []
        for arg, default in e.arguments():
            args.append(arg if default is inspect.Parameter.empty else f"{arg}={_show(default)}")
        lines.append(f"  {e.name}({', '.join(args)})")
        doc = inspect.getdoc(e.cls)
        if doc:
            lines.append(f"      {doc.splitlines()[0]}")
    return "\n".join(lines).lstrip("\n")
