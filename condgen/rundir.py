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
  .condgen-run      the marker: this folder is a condgen run (JSON: condgen version, creation time)
  .condgen-lock     held (fcntl.flock) by the trainer writing the run; holds its pid and host
  .step_<N>.tmp/    a checkpoint being written; .step_<N>.old/ the copy a re-save of step N moves aside
Pure path and file logic: nothing here imports torch or the rest of condgen.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from collections.abc import Iterator
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
MARKER_FILE = ".condgen-run"
LOCK_FILE = ".condgen-lock"
_STEP_DIR = re.compile(r"^step_(\d+)$")
_OLD_DIR = re.compile(r"^\.step_(\d+)\.old$")


class RunDirError(Exception):
    """--run_dir cannot be used (a file, someone else's folder, or in use); the message names the fix."""


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / f"step_{step}"


def temp_checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    """Where a checkpoint is written before its rename to `step_<N>`."""
    return Path(run_dir) / f".step_{step}.tmp"


def old_checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    """Where re-saving step N moves the previous `step_<N>` until the new one is in place."""
    return Path(run_dir) / f".step_{step}.old"


def old_checkpoint_dirs(run_dir: str | Path) -> list[tuple[Path, Path]]:
    """(`.step_<N>.old`, `step_<N>`) for every moved-aside copy left in the run, oldest step first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := _OLD_DIR.match(p.name))]
    return [(p, checkpoint_dir(run_dir, step)) for step, p in sorted(found)]


# ---------------------------------------------------------------------------------- what is a run dir
def is_marked(run_dir: str | Path) -> bool:
    return (Path(run_dir) / MARKER_FILE).is_file()


def is_condgen_checkpoint(path: str | Path) -> bool:
    """`path` is a `step_<N>` folder whose `state.json` is condgen's (step, models, spec), not any JSON."""
    path = Path(path)
    if not (_STEP_DIR.match(path.name) and path.is_dir()):
        return False
    try:
        state = json.loads((path / STATE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(state, dict) and isinstance(state.get("step"), int)
            and isinstance(state.get("models"), dict) and isinstance(state.get("spec"), dict))


def is_legacy_run(run_dir: str | Path) -> bool:
    """A run made before the marker existed, recognised by what only condgen writes: a `step_<N>` checkpoint
    with condgen's `state.json` (a `summary.json` or `config.gin` of your own is not enough)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return False
    return any(is_condgen_checkpoint(p) for p in run_dir.iterdir())


def check_run_dir(run_dir: str | Path) -> None:
    """Raise `RunDirError` unless `run_dir` is absent, empty, a marked condgen run or an older condgen run."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"--run_dir {run_dir} is a file, not a folder; choose a new --run_dir (a folder "
                          "that does not exist yet)")
    if not run_dir.is_dir() or is_marked(run_dir) or is_legacy_run(run_dir):
        return
    _refuse_if_not_empty(run_dir, "--run_dir", "a condgen run", MARKER_FILE, "Choose a new --run_dir",
                         ignore=(LOCK_FILE, f"{MARKER_FILE}.tmp"))


def _refuse_if_not_empty(
    folder: Path, flag: str, what: str, marker: str, fix: str, ignore: tuple[str, ...] = ()
) -> None:
    """Raise `RunDirError` naming a few entries when `folder` holds anything (someone else's files)."""
    entries = sorted(p.name for p in folder.iterdir() if p.name not in ignore)
    if entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise RunDirError(
            f"{flag} {folder} is a folder that is not empty ({shown}) and not {what} (it has no "
            f"{marker}); condgen would write its files among yours. {fix}"
        )


def mark_run_dir(run_dir: str | Path) -> Path:
    """Create `run_dir` if needed and write its marker (kept as it is when there is one)."""
    from condgen.version import __version__

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    marker = run_dir / MARKER_FILE
    if not marker.is_file():
        tmp = run_dir / f"{MARKER_FILE}.tmp"
        tmp.write_text(json.dumps({"condgen": __version__, "format": 1, "created": time.time()}) + "\n")
        os.replace(tmp, marker)
    return marker


def remove_entries(run_dir: str | Path, keep: set[str]) -> None:
    """Delete every file and folder directly in `run_dir` whose name is not in `keep`."""
    import shutil

    for p in Path(run_dir).iterdir():
        if p.name in keep:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------- the lock
class RunDirLock:
    """An exclusive `fcntl.flock` on `run_dir/.condgen-lock`, held while a trainer writes the run.

    The OS drops the lock when the holder exits, however it exits, so a lock left by a killed trainer is
    taken over silently; the pid and host in the file are only there for the message.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> RunDirLock:
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock
            return self
        for _ in range(10):  # the file may be unlinked by its holder between our open and our lock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunDirError(
                    f"--run_dir {self.path.parent} is in use by another trainer ({holder}; lock "
                    f"{self.path}). Wait for it to finish or stop it, or choose a new --run_dir"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
                return self
            os.close(fd)
        raise RunDirError(f"could not lock {self.path}: it keeps being replaced")

    def release(self, *, remove: bool = False) -> None:
        """Drop the lock; `remove` also deletes the file (unlinked first, so no one locks a stale name)."""
        if self.fd is None:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)  # closing the descriptor releases the flock
        self.fd = None

    def __enter__(self) -> RunDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if "pid" not in info:
        return "pid unknown"
    return f"pid {info['pid']} on host {info.get('host', '?')}"


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


# ------------------------------------------------------------------------- output folders of reports
OUTPUT_MARKER = ".condgen-output"  # a folder condgen wrote a report into: it may write there again


def check_output_dir(out: str | Path, flag: str = "--out") -> None:
    """Raise `RunDirError` unless `out` is absent, empty or marked as a condgen output folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{flag} {out} is a file, not a folder; choose a folder")
    if out.is_dir() and not (out / OUTPUT_MARKER).is_file():
        _refuse_if_not_empty(out, flag, "written by condgen", OUTPUT_MARKER, "Choose a new or empty folder")


def mark_output_dir(out: str | Path) -> Path:
    """Create `out` if needed and mark it as a condgen output folder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    marker = out / OUTPUT_MARKER
    if not marker.is_file():
        marker.write_text(json.dumps({"written_by": "condgen", "created": time.time()}) + "\n")
    return marker


@contextlib.contextmanager
def output_dir(out: str | Path, flag: str = "--out") -> Iterator[Path]:
    """Claim `out` for a command's files: refused unless absent, empty or condgen's (`check_output_dir`),
    then marked; if the command fails, what it added is removed (and the folder, when it made it), so a
    failed `compare` leaves no `losses.png` behind."""
    out = Path(out)
    check_output_dir(out, flag)
    created = not out.exists()
    before = set() if created else {p.name for p in out.iterdir()}
    mark_output_dir(out)
    try:
        yield out
    except BaseException:
        remove_entries(out, keep=before)
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
