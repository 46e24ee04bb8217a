"""Gin files and bindings -> gin's configuration; every config error surfaces before any work.

Parse order (later wins): the run's saved `config.gin` when resuming, then each `--gin FILE`, then each
`--gin_bindings 'X.y = z'`. The repo's `gin/` folder is on gin's search path, so `include 'base/train.gin'`
works from any directory. Unknown configurables or parameters fail with the available names of that kind
and the close matches; on resume, an architecture binding that differs from the checkpoint's is an error, and
so is another dataset unless `--allow_dataset_change` (without a checkpoint there are no weights to match: a
marked run's own config.gin is only the base).
The train command (`experiments/run.py`, `condgen train`) is `condgen.cli.train`; every command that reads
gin (train, eval, check-data) parses it here.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import logging
import re
from pathlib import Path
from typing import Any

import gin

from condgen.config import GIN_DIR, LEGACY_BINDINGS, install_reader, run_user_imports, translate_bindings
from condgen.config import saved_config as mark_saved

# Configurables whose bindings fix the networks' shapes: they must not change when resuming.
ARCHITECTURE_KINDS = ("norm", "condition", "block", "generator", "discriminator", "encoder")


class ConfigError(Exception):
    """A bad flag, gin file or binding; the message says what to change."""


def add_bindings_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """`--gin_bindings B [B ...]`, repeatable (every command that reads gin takes it in this one form)."""
    parser.add_argument("--gin_bindings", action="extend", nargs="+", default=[], metavar="BINDING",
                        help=help)


def import_configurables() -> None:
    """Import every module that defines configurables; gin can only bind what is registered."""
    import condgen  # noqa: F401  (the package registers every built-in block)
    import condgen.train.build  # noqa: F401
    import condgen.train.loop  # noqa: F401


def resolve_gin_file(name: str | Path) -> Path:
    """A `--gin` argument as an existing file: as given, else relative to the repo's `gin/` folder."""
    path = Path(name).expanduser()
    candidates = [path, GIN_DIR / path]
    if path.parts[:1] == ("gin",):  # `--gin gin/x.gin` from outside the repo
        candidates.append(GIN_DIR.joinpath(*path.parts[1:]))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    available = sorted(str(p.relative_to(GIN_DIR)) for p in GIN_DIR.rglob("*.gin"))
    close = difflib.get_close_matches(path.name, [Path(a).name for a in available], n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"gin file {str(name)!r} not found (looked in {Path.cwd()} and {GIN_DIR}).{hint} "
        f"Available: {', '.join(available) or '(none)'}"
    )


def parse_gin(files: list[str | Path], bindings: list[str], *, saved_config: Path | None = None,
              compare_architecture: bool = True, allow_dataset_change: bool = False) -> None:
    """Parse (saved config,) files, then bindings into gin's global config, with readable errors.

    With a saved config and `compare_architecture`, a changed architecture binding is a `ConfigError`, and
    so is a changed dataset (`train.dataset` or a binding of the dataset class) unless
    `allow_dataset_change`: resuming would otherwise train on other data without a word."""
    import_configurables()
    install_reader()
    bindings = translate_bindings(list(bindings))
    resolved = [resolve_gin_file(f) for f in files]
    before: dict[str, str] = {}
    data_before: dict[str, str] = {}
    if saved_config is not None:
        run_user_imports(bindings)  # the user's imports first: the saved config's own are not run
        mark_saved(saved_config)
    compare = saved_config is not None and compare_architecture
    if compare:
        _parse([saved_config], [])
        before, data_before = _architecture_bindings(), _dataset_bindings()
    _parse([*([saved_config] if saved_config else []), *resolved], bindings)
    if compare:
        diff = _differences(before, _architecture_bindings())
        if diff:
            raise ConfigError(
                f"--resume: architecture bindings differ from the checkpoint's {saved_config} ({diff}). "
                "A run's networks cannot change; drop these bindings, or start a new --run_dir"
            )
    if compare and not allow_dataset_change and "train.dataset" in data_before:  # a trained run's config
        data_after = _dataset_bindings()
        if data_before["train.dataset"] != data_after.get("train.dataset"):  # only that, not every binding
            data_before, data_after = ({"train.dataset": d.get("train.dataset", "unset")}
                                       for d in (data_before, data_after))
        diff = _differences(data_before, data_after)
        if diff:
            raise ConfigError(
                f"--resume: the dataset differs from the checkpoint's {saved_config} ({diff}). Training "
                "would continue on other data; pass --allow_dataset_change if that is what you want (e.g. "
                "the data moved), or drop these bindings"
            )


def _differences(before: dict[str, str], after: dict[str, str]) -> str:
    """'k = old saved, new now; ...' for every binding that differs ('' when none)."""
    changed = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    return "; ".join(f"{k} = {before.get(k, 'unset')} saved, {after.get(k, 'unset')} now" for k in changed)


def _parse(files: list[Path], bindings: list[str]) -> None:
    gin.clear_config()
    # gin logs an ERROR for every search-path prefix an include is not found under, even when a later
    # prefix finds it; a file that is really missing still raises below.
    logging.disable(logging.ERROR)
    try:
        gin.parse_config_files_and_bindings([str(f) for f in files], bindings, finalize_config=False)
    except ValueError as e:
        raise ConfigError(_explain(str(e))) from None
    except OSError as e:
        raise ConfigError(f"{e}\n(include paths are relative to {GIN_DIR} or absolute)") from None
    except Exception as e:  # gin's parser: SyntaxError, tokenize errors, failed `import` statements
        where = _locate_syntax_error(files, bindings)
        if where:
            msg = f"cannot parse the gin configuration: syntax error in {where} ({_reason(e)})"
            raise ConfigError(msg) from None
        raise ConfigError(f"cannot parse the gin configuration: {type(e).__name__}: {e}") from None
    finally:
        logging.disable(logging.NOTSET)


def _parses(text: str) -> bool:
    from gin import config_parser

    try:
        for _ in config_parser.ConfigParser(text, gin.config.ParserDelegate(skip_unknown=True)):
            pass
    except Exception:
        return False
    return True


def _first_bad_statement(text: str) -> tuple[int, str] | None:
    """(line number, line) of the statement that breaks `text`, or None when it parses."""
    lines = text.splitlines()
    if _parses(text):
        return None
    starts = [i for i, line in enumerate(lines) if line.strip() and not line[0].isspace() and line[0] != "#"]
    bad = starts[0] if starts else 0
    for start in starts:  # the last statement whose preceding lines still parse is the broken one
        if not _parses("\n".join(lines[:start])):
            break
        bad = start
    return bad + 1, lines[bad] if lines else ""


def _locate_syntax_error(files: list[Path], bindings: list[str]) -> str | None:
    """Where a gin parse failed: the --gin_bindings string, or the file and line."""
    from condgen.config import translate_legacy

    for b in bindings:
        if _first_bad_statement(b):
            return f"--gin_bindings {b!r}"
    for f in files:
        found = _first_bad_statement(translate_legacy(Path(f).read_text())[0])
        if found:
            return f"{f}, line {found[0]}: {found[1].strip()!r}"
    return None


def _reason(e: Exception) -> str:
    text = str(e)
    if "EOF in multi-line statement" in text:
        return "a bracket or quote is never closed"
    return text.split("\n")[0]


def _all_configurables() -> dict[str, Any]:
    """gin name -> function or class, for every registered configurable (condgen's and gin's own)."""
    out = {}
    for selector, configurable in gin.config._REGISTRY.items():  # no public API lists them (gin 0.5)
        out[selector.split(".")[-1]] = configurable.wrapped
    return out


def _denylists() -> dict[str, tuple[str, ...]]:
    """Parameters gin may not bind (`train`'s run_dir and resume come from flags)."""
    return {sel.split(".")[-1]: tuple(c.denylist or ()) for sel, c in gin.config._REGISTRY.items()}


def _kind_of(name: str) -> str | None:
    from condgen.registry import _ALL

    entry = _ALL.get(name)
    return entry.kind if entry else None


def _explain(message: str) -> str:
    """gin's ValueError -> the same facts plus the names one could have meant."""
    from condgen.registry import names

    location = message.split("\n", 1)[1].strip() if "\n" in message else ""
    where = f" ({' '.join(location.split())})" if location else ""
    known = _all_configurables()
    m = re.match(r"No configurable matching (?:reference )?'@?([^']+)'", message)
    if m:
        name = m.group(1).split("/")[-1].removesuffix("()")
        close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
        kind = _kind_of(close[0]) if close else None
        if kind:
            pool = f"registered {kind}s: {', '.join(names(kind))}"
        else:
            pool = f"configurables: {', '.join(sorted(known))}"
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown configurable {name!r}{where}.{hint} Available {pool}"
    m = re.match(r"Configurable '([^']+)' doesn't have a parameter named '([^']+)'", message)
    if m:
        selector, param = m.groups()
        target = known.get(selector.split(".")[-1])
        params = _parameters(target) if target is not None else []
        denied = _denylists().get(selector.split(".")[-1], ())
        params = [p for p in params if p not in denied]
        name = selector.split(".")[-1]
        moved = {k.split(".", 1)[1]: v for k, v in LEGACY_BINDINGS.items() if k.split(".", 1)[0] == name}
        close = difflib.get_close_matches(param, params + list(moved), n=3, cutoff=0.5)
        shown = [f"{c!r} (now {moved[c]})" if c in moved else repr(c) for c in close]
        hint = f" Did you mean {', '.join(shown)}?" if close else ""
        return f"{selector} has no parameter {param!r}{where}.{hint} Its parameters: {', '.join(params)}"
    return message


def _parameters(fn_or_cls: Any) -> list[str]:
    target = fn_or_cls.__init__ if inspect.isclass(fn_or_cls) else fn_or_cls
    params = inspect.signature(inspect.unwrap(target)).parameters.values()
    return [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _architecture_bindings() -> dict[str, str]:
    """'scope/Name.param' -> repr(value) for the bindings of network classes and `build_gan`."""
    out = {}
    for (scope, selector), params in gin.config._CONFIG.items():
        name = selector.split(".")[-1]
        if name != "build_gan" and _kind_of(name) not in ARCHITECTURE_KINDS:
            continue
        for param, value in params.items():
            out[f"{scope + '/' if scope else ''}{name}.{param}"] = _resolved_repr(value)
    return out


def _dataset_bindings() -> dict[str, str]:
    """'train.dataset' and 'Name.param' -> repr(value) for the dataset class it names (the bindings of other
    dataset classes do not matter: an included file may bind several)."""
    out = {}
    for (scope, selector), params in gin.config._CONFIG.items():
        if selector.split(".")[-1] == "train" and not scope and "dataset" in params:
            out["train.dataset"] = _resolved_repr(params["dataset"])
    chosen = out.get("train.dataset", "").lstrip("@").split("/")[-1].removesuffix("()")
    for (scope, selector), params in gin.config._CONFIG.items():
        name = selector.split(".")[-1]
        if name == chosen and _kind_of(name) == "dataset":
            for param, value in params.items():
                out[f"{scope + '/' if scope else ''}{name}.{param}"] = _resolved_repr(value)
    return out


def _resolved_repr(value: Any) -> str:
    """repr of a bound value, with macros (`%NGF`) replaced by what they stand for."""
    text = repr(value)
    for _ in range(16):  # macros may name macros
        if not text.startswith("%"):
            break
        try:
            text = repr(gin.query_parameter(text))
        except ValueError:
            break
    return text
