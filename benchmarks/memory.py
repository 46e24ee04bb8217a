"""Device-independent memory accounting for the benchmarks: live tensor bytes and their peak.

`MemoryMeter` is a dispatch mode that sees every tensor an aten op creates, on any device, and follows its
storage until it is freed; it reports the bytes alive now (`live`), the highest value seen at an op
boundary (`peak`) and the bytes alive when a mark was taken. On CUDA the allocator's own peak is the better
number (the benchmarks report it there); this is the CPU stand-in. `saved_tensor_bytes` is the other
number the official analysis uses: distinct storages autograd saves for backward, parameters excluded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

GiB = 2**30


class MemoryMeter(TorchDispatchMode):
    """Track storages created while active. Storages of `ignore` (parameters, inputs) are never counted.

    Peak is sampled after each op (outputs allocated, inputs not yet released): allocator-internal
    workspaces of a single op are not seen, so it is a lower bound on what an allocator would report.
    """

    def __init__(self, ignore: Iterable[Tensor] = ()) -> None:
        super().__init__()
        self._ignore = {t.untyped_storage().data_ptr() for t in ignore}
        self._live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.live = self.peak = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        added = False
        for t in tree_flatten(out)[0]:
            if isinstance(t, Tensor) and t.device.type != "meta":
                st = t.untyped_storage()
                key = st.data_ptr()
                if key in self._ignore or key == 0:
                    continue
                known = self._live.get(key)
                if known is None or known[0].expired():
                    self._live[key] = (StorageWeakRef(st), st.nbytes())
                    added = True
        if added:
            self._refresh()
            self.peak = max(self.peak, self.live)
        return out

    def _refresh(self) -> None:
        self._live = {k: v for k, v in self._live.items() if not v[0].expired()}
        self.live = sum(n for _, n in self._live.values())

    def current(self) -> int:
        """Bytes alive now (of the storages created while the meter was active)."""
        self._refresh()
        return self.live

    def reset_peak(self) -> None:
        self.peak = self.current()


def saved_tensor_bytes(fn: Callable[[], Any], exclude: Iterable[Tensor] = ()) -> tuple[Any, int]:
    """Run `fn` and return (its result, bytes of the distinct storages autograd saved, `exclude` not counted).

    A lower bound on activation memory: tensors kept by activation checkpointing frames are not seen here.
    """
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    storages: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in skip:
            storages[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(storages.values())
