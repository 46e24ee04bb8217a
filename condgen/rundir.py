"""The run directory: every file name condgen writes into a run, and the readers that find them.

  config.gin        the operative gin configuration (every bound and default value actually used)
  metrics.jsonl     one JSON record per `log_every` steps: step, epoch, lr_G, lr_D, losses, images_per_s
  samples/          step_<N>.png grids, one row per fixed item: label | real | fake (EMA G when kept)
  tb/               TensorBoard events: the same scalars, the grids, the config (`tensorboard --logdir`)
  step_<N>/         checkpoints (Accelerate state + config.gin + state.json), the newest `keep_last` kept
  latest            the name of the newest complete checkpoint, replaced atomically
  summary.json      written at the end: where everything is, wall time, images/s, per-process weight hashes
  eval/             metrics files, `<split>_step<N>_<features>[_ema].json`
  convert.json      (converted official checkpoints) the official files they came from
Pure path logic: nothing here imports torch or the rest of condgen.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.gin"
STATE_FILE = "state.json"
LATEST_FILE = "latest"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
SAMPLES_DIR = "samples"
TB_DIR = "tb"
EVAL_DIR = "eval"
CONVERT_FILE = "convert.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def checkpoint_dirs(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run (those with `state.json`), oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = []
    for p in run_dir.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and (p / STATE_FILE).is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint `latest` names, else the newest complete one, else None."""
    run_dir = Path(run_dir)
    pointer = run_dir / LATEST_FILE
    if pointer.is_file():
        candidate = run_dir / pointer.read_text().strip()
        if (candidate / STATE_FILE).is_file():
            return candidate
    complete = checkpoint_dirs(run_dir)
    return complete[-1] if complete else None


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used as it is (a truncated or missing file); the message names the file."""


def checkpoint_problem(ckpt: str | Path) -> str | None:
    """Why `ckpt` cannot be loaded, or None: every file `state.json` lists must have its saved size, and every
    `.safetensors` file must hold all the bytes its header promises (checkpoints older than the size list).
    """
    ckpt = Path(ckpt)
    try:
        state = read_state(ckpt)
    except (OSError, ValueError) as e:
        return f"{ckpt / STATE_FILE} cannot be read ({e})"
    for name, size in state.get("files", {}).items():
        path = ckpt / name
        if not path.is_file():
            return f"{path} is missing"
        if path.stat().st_size != size:
            return f"{path} is truncated or damaged ({path.stat().st_size:,} bytes, saved with {size:,})"
    for path in sorted(ckpt.glob("*.safetensors")):
        problem = _safetensors_problem(path)
        if problem:
            return f"{path} {problem}"
    return None


def _safetensors_problem(path: Path) -> str | None:
    """safetensors layout: 8-byte little-endian header length, JSON header (data offsets), then the data."""
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n <= 0 or 8 + n > size:
                return f"is truncated ({size:,} bytes, its header alone needs {8 + n:,})"
            header = json.loads(f.read(n))
    except (OSError, ValueError) as e:
        return f"has an unreadable header ({e})"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end != size:
        return f"is truncated ({size:,} bytes, its header describes {8 + n + end:,})"
    return None


def resumable_checkpoint(run_dir: str | Path) -> tuple[Path | None, list[str]]:
    """The newest checkpoint with no `checkpoint_problem` (the one `latest` names first), and the problems
    of the newer ones passed over, so that a resume can say what it skipped."""
    latest = latest_checkpoint(run_dir)
    ordered = ([latest] if latest else []) + [p for p in reversed(checkpoint_dirs(run_dir)) if p != latest]
    skipped = []
    for ckpt in ordered:
        problem = checkpoint_problem(ckpt)
        if problem is None:
            return ckpt, skipped
        skipped.append(problem)
    return None, skipped


def is_checkpoint(path: str | Path) -> bool:
    return (Path(path) / STATE_FILE).is_file()


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder as given, or a run directory's latest checkpoint; raises naming what it found."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist; give a run directory, a step_<N> checkpoint folder "
            "or a `python -m condgen.convert` output folder"
        )
    if is_checkpoint(path) and not (path / LATEST_FILE).is_file():
        return path
    found = latest_checkpoint(path)
    if found is None:
        raise FileNotFoundError(f"{path} is neither a checkpoint nor a run directory with checkpoints")
    return found


def read_state(ckpt: str | Path) -> dict[str, Any]:
    return json.loads((Path(ckpt) / STATE_FILE).read_text())


def sample_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / SAMPLES_DIR / f"step_{step:06d}.png"


def eval_path(
    ckpt: str | Path | None, step: int | None, source: str | Path, split: str, features: str, ema: bool
) -> Path:
    """`<run>/eval/<split>_step<N>_<features>[_ema].json`, or `<folder>/eval/<split>_<features>.json`."""
    suffix = "_ema" if ema else ""
    if ckpt:
        return Path(ckpt).parent / EVAL_DIR / f"{split}_step{step}_{features}{suffix}.json"
    return Path(source) / EVAL_DIR / f"{split}_{features}{suffix}.json"


def eval_files(run_dir: str | Path) -> list[Path]:
    return sorted((Path(run_dir) / EVAL_DIR).glob("*.json"))
