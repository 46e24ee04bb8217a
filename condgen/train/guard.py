"""Stopping a trainer cleanly: SIGINT / SIGTERM between steps, and when its launcher dies.

`StopSignals` turns SIGINT (Ctrl-C) and SIGTERM into `TrainingInterrupted`. Until the loop starts they
raise at once (nothing worth saving exists yet); once it is `deferred` they only note the request, which the
loop checks at the end of each step (all processes agree on it): it saves a checkpoint at that step and
raises `TrainingInterrupted` naming it, so `--resume` continues exactly and at most the step in progress is
lost. A second signal while one is pending raises at once. The command line exits 128 + the signal number
(130 for SIGINT, 143 for SIGTERM) with a one-line message.

`stop_with_launcher`: a process started by `accelerate launch` / `torchrun` asks the kernel for SIGTERM when
its launcher dies (Linux `prctl(PR_SET_PDEATHSIG)`; elsewhere a thread watching the parent pid), so killing
the launcher never leaves an orphaned trainer holding the GPU and the run directory.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# set in every process the launchers start (not by a plain `python experiments/run.py`)
LAUNCHER_ENV = ("LOCAL_RANK", "TORCHELASTIC_RUN_ID", "ACCELERATE_DYNAMO_BACKEND")
_PR_SET_PDEATHSIG = 1


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal; `checkpoint` holds the state at `step` (None: nothing was saved)."""

    def __init__(self, signum: int, step: int | None = None, checkpoint: Any = None) -> None:
        self.signum, self.step, self.checkpoint = int(signum), step, checkpoint
        super().__init__(self.message())

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    def message(self) -> str:
        if self.checkpoint is not None:
            return (f"stopped by {self.signal_name} after step {self.step}: saved {self.checkpoint}; "
                    "--resume continues from it")
        return (f"stopped by {self.signal_name}; nothing new was saved (--resume continues from the latest "
                "checkpoint)")


class StopSignals:
    """Context manager installing the SIGINT / SIGTERM handlers (main thread only), restoring them after."""

    def __init__(self) -> None:
        self.requested: int | None = None
        self.deferred = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue  # ignored by whoever started us (nohup, a background job): keep it ignored
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.deferred and self.requested is None:
            self.requested = signum
            return
        raise TrainingInterrupted(signum)


def launched_by_launcher() -> bool:
    return any(name in os.environ for name in LAUNCHER_ENV)


def loud_accelerate_launch() -> bool:
    """Whether `accelerate launch` without -q / --quiet started this process: after a failure it prints the
    process's stderr again inside its own `CalledProcessError` traceback, and always exits 1."""
    if not launched_by_launcher():
        return False
    try:
        import psutil  # an Accelerate dependency

        args = psutil.Process(os.getppid()).cmdline()
    except Exception:  # noqa: BLE001 (no psutil, no permission, parent gone: nothing to say)
        return False
    # `accelerate launch ...` or `python -m accelerate.commands.launch ...`
    launch = next((i for i, a in enumerate(args) if a == "accelerate.commands.launch"
                   or (a == "launch" and i and os.path.basename(args[i - 1]) == "accelerate")), None)
    if launch is None:
        return False
    script = next((i for i, a in enumerate(args) if a.endswith(".py") and i > launch), len(args))
    return not any(a in ("-q", "--quiet") for a in args[launch:script])  # launcher options only


def stop_with_launcher() -> str | None:
    """Get SIGTERM when the launcher that started this process dies; returns how ('prctl', 'watchdog')."""
    if not launched_by_launcher():
        return None
    parent = os.getppid()
    how = None
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) == 0:
                how = "prctl"
        except (OSError, AttributeError):
            how = None
    if how is None:
        watch = threading.Thread(target=_watch_parent, args=(parent,), name="condgen-parent", daemon=True)
        watch.start()
        how = "watchdog"
    if os.getppid() != parent:  # the launcher died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
    return how


def _watch_parent(parent: int, interval: float = 1.0) -> None:
    import time

    while os.getppid() == parent:
        time.sleep(interval)
    os.kill(os.getpid(), signal.SIGTERM)
