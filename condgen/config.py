"""gin configuration files: where condgen's ship, and how older configs are read.

- `GIN_DIR`: the experiments, bases and block files that ship inside the package (`condgen/gin`, package
  data found through `importlib.resources`; in a checkout the top-level `gin/` points there).
- Legacy bindings: configs written before the objective became a block bind the loss weights on `train`
  (`train.lambda_feat = 10.0`). Every gin file condgen reads (includes and saved `config.gin` files too) and
  every `--gin_bindings` string is translated to the current names (`Pix2PixHDObjective.lambda_feat`),
  with one warning per file, so saved runs still load and resume.
- Saved configs (a run's `config.gin`, read on `condgen eval` and `--resume`) are data, not code: gin would
  execute their `import` lines, and a downloaded run could import anything. Their imports are not run; a
  module the user already imported (e.g. with `--gin_bindings 'import my_blocks'`) is accepted, any other
  is an `UntrustedImportError` naming the file, the line and the fix.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import sys
import warnings
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import gin

GIN_DIR = Path(str(resources.files("condgen") / "gin"))

# old selector.parameter -> new; each entry says where the setting lives now
LEGACY_BINDINGS: dict[str, str] = {
    **{f"train.{p}": f"Pix2PixHDObjective.{p}" for p in ("lambda_feat", "lambda_vgg", "lambda_kld")},
    **{f"train.{p}": f"Pix2PixHDObjective.{p}" for p in ("gan_loss", "feat_loss", "vgg_loss", "kld_loss")},
}
_NAMES = "|".join(re.escape(k) for k in LEGACY_BINDINGS)
_LEGACY = re.compile(rf"^(?P<indent>\s*)(?P<scope>[\w/]*/)?(?P<name>{_NAMES})(?=\s*=)", re.MULTILINE)


def translate_legacy(text: str) -> tuple[str, list[str]]:
    """Rewrite legacy bindings in gin text; returns the new text and the names that were rewritten."""
    found: list[str] = []

    def swap(m: re.Match) -> str:
        found.append(m["name"])
        return f"{m['indent']}{m['scope'] or ''}{LEGACY_BINDINGS[m['name']]}"

    return _LEGACY.sub(swap, text), found


def _warn(found: list[str], where: str) -> None:
    if found:
        moved = ", ".join(f"{k} -> {LEGACY_BINDINGS[k]}" for k in dict.fromkeys(found))
        warnings.warn(f"{where}: legacy gin bindings read as their current names ({moved})", stacklevel=3)


def translate_bindings(bindings: list[str]) -> list[str]:
    out = []
    for b in bindings:
        text, found = translate_legacy(b)
        _warn(found, "--gin_bindings")
        out.append(text)
    return out


class UntrustedImportError(ValueError):
    """A saved config asks to import a module that nobody imported: condgen does not run it."""


_SAVED: set[str] = set()  # the files read as saved configs (their imports are not executed)
_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+(?P<pkg>[\w.]+)[ \t]+)?import[ \t]+(?P<mod>[\w.]+)[^\n]*$", re.MULTILINE
)


def saved_config(path: str | Path) -> str:
    """Mark `path` as a saved run config and return it as a string, for gin to read without its imports."""
    _SAVED.add(os.path.abspath(path))
    return str(path)


def strip_imports(text: str, where: str) -> str:
    """Comment out a saved config's `import` lines whose module is already imported; refuse the others."""

    def check(m: re.Match) -> str:
        module = f"{m['pkg']}.{m['mod']}" if m["pkg"] else m["mod"]
        if m["pkg"] == "__gin__" or module in sys.modules or m["mod"] in sys.modules:
            return f"# {m.group(0).strip()}  (not executed: already imported)"
        line = text.count("\n", 0, m.start()) + 1
        raise UntrustedImportError(
            f"{where}, line {line}: {m.group(0).strip()!r}: condgen does not run the imports of a saved "
            "config (a run from elsewhere could import any code). If you trust the module, import it "
            f"yourself: --gin_bindings 'import {module}'"
        )

    return _IMPORT.sub(check, text)


def run_user_imports(bindings: list[str] | tuple[str, ...]) -> None:
    """Import the modules the user's own `--gin_bindings` import, before any saved config is read."""
    for binding in bindings:
        for m in _IMPORT.finditer(binding):
            if m["pkg"] != "__gin__":
                importlib.import_module(f"{m['pkg']}.{m['mod']}" if m["pkg"] else m["mod"])


def _read_translated(path: str) -> io.StringIO:
    text, found = translate_legacy(Path(path).read_text())
    _warn(found, path)
    if os.path.abspath(path) in _SAVED:
        text = strip_imports(text, path)
    return io.StringIO(text)


def install_reader() -> None:
    """Make gin read every config file (and include) through the legacy translation."""
    readers = gin.config._FILE_READERS  # gin 0.5 has no public way to put a reader first
    if not any(reader is _read_translated for reader, _ in readers):
        readers.insert(0, (_read_translated, os.path.isfile))
    if str(GIN_DIR) not in gin.config._LOCATION_PREFIXES:
        gin.add_config_file_search_path(str(GIN_DIR))


@contextlib.contextmanager
def preserved_gin() -> Iterator[None]:
    """Leave gin's global configuration as it was found: whatever the block parses or clears is undone.

    `SynthesisPipeline` loads a run inside this, so loading a model never replaces the caller's config.
    gin 0.5 has no public snapshot API; the bindings, imports and operative record are its module globals.
    """
    cfg = gin.config
    saved = (
        {k: dict(v) for k, v in cfg._CONFIG.items()},
        set(cfg._IMPORTS),
        {k: dict(v) for k, v in cfg._OPERATIVE_CONFIG.items()},
        dict(cfg._SINGLETONS),
        cfg.config_is_locked(),
    )
    try:
        yield
    finally:
        cfg._set_config_is_locked(False)
        cfg._CONFIG.clear()
        cfg._CONFIG.update(saved[0])
        cfg._IMPORTS.clear()
        cfg._IMPORTS.update(saved[1])
        with cfg._OPERATIVE_CONFIG_LOCK:
            cfg._OPERATIVE_CONFIG.clear()
            cfg._OPERATIVE_CONFIG.update(saved[2])
        cfg._SINGLETONS.clear()
        cfg._SINGLETONS.update(saved[3])
        cfg._set_config_is_locked(saved[4])


@contextlib.contextmanager
def active_config(text: str, where: str = "config.gin") -> Iterator[None]:
    """Make `text` (a run's saved config) gin's whole global configuration inside the block only.

    Its imports are not run (`strip_imports`); bindings naming classes not imported are skipped, as
    `load_run` does for a saved config.
    """
    install_reader()
    with preserved_gin():
        gin.clear_config()
        body, found = translate_legacy(text)
        _warn(found, where)
        gin.parse_config(strip_imports(body, where), skip_unknown=True)
        yield
