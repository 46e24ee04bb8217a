"""gin configuration files: where condgen's ship, and how older configs are read.

- `GIN_DIR`: the experiments, bases and block files that ship inside the package (`condgen/gin`, package
  data found through `importlib.resources`; in a checkout the top-level `gin/` points there).
- Legacy bindings: configs written before the objective became a block bind the loss weights on `train`
  (`train.lambda_feat = 10.0`). Every gin file condgen reads (includes and saved `config.gin` files too) and
  every `--gin_bindings` string is translated to the current names (`Pix2PixHDObjective.lambda_feat`),
  with one warning per file, so saved runs still load and resume.
"""

from __future__ import annotations

import io
import os
import re
import warnings
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


def _read_translated(path: str) -> io.StringIO:
    text, found = translate_legacy(Path(path).read_text())
    _warn(found, path)
    return io.StringIO(text)


def install_reader() -> None:
    """Make gin read every config file (and include) through the legacy translation."""
    readers = gin.config._FILE_READERS  # gin 0.5 has no public way to put a reader first
    if not any(reader is _read_translated for reader, _ in readers):
        readers.insert(0, (_read_translated, os.path.isfile))
    if str(GIN_DIR) not in gin.config._LOCATION_PREFIXES:
        gin.add_config_file_search_path(str(GIN_DIR))
