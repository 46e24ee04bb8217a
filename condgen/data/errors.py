"""`DataError`: the one exception type for bad dataset files and layouts.

Every message names the file (or folder), the offending value and the fix, so a broken pair surfaces as
one readable line instead of a CUDA scatter assert or a crash inside a DataLoader worker (SPADE #68, #137).
"""

from __future__ import annotations

from pathlib import Path

WORKER_TRACEBACK = "\nOriginal Traceback (most recent call last):"


class DataError(ValueError):
    """A dataset file or layout problem. `path` is the file (or folder) at fault, when there is one."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        if path is None and message.startswith("Caught ") and WORKER_TRACEBACK in message:
            # torch re-raises a DataLoader worker's error as type(error)("Caught ... in DataLoader worker
            # process N.\nOriginal Traceback ... DataError: <message>"): keep the one line that says
            # which file and what to do, as without workers
            message = message.rsplit(f"{type(self).__name__}: ", 1)[-1].strip()
            head = message.split(": ", 1)[0]
            path = head if head and Path(head).exists() else None
        super().__init__(message)
        self.path = None if path is None else str(path)

    def __reduce__(self):  # keep `path` when a DataLoader worker re-raises the error in the main process
        return (type(self), (self.args[0], self.path))
