"""Reproducible batches: data order and augmentation are functions of (seed, epoch, position) only.

The official loader shuffles with the global RNG, so a restarted run sees other batches. Here each epoch is
a permutation drawn from (seed, epoch); global micro-batch `b` takes the next `batch_size x num_processes`
items of it, and process `r` the r-th slice. Every item is loaded under an RNG seeded from (seed, epoch,
position), so random crops and flips do not depend on workers, processes or where a run was resumed.
Resuming at step s therefore only needs `start_micro_batch = s x grad_accum`; nothing is skipped by loading.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def batches_per_epoch(num_items: int, batch_size: int, num_processes: int) -> int:
    """Global micro-batches per epoch (incomplete last batches are dropped, as officially)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    per_batch = batch_size * num_processes
    if num_items < per_batch:
        raise ValueError(
            f"the dataset has {num_items} items but one global batch needs {per_batch} "
            f"(batch_size {batch_size} x {num_processes} processes); lower train.batch_size or add data"
        )
    return num_items // per_batch


def epoch_order(num_items: int, seed: int, epoch: int, *, shuffle: bool = True) -> torch.Tensor:
    """The item order of one epoch: a permutation drawn from (seed, epoch), or 0..n-1 without shuffle."""
    if not shuffle:
        return torch.arange(num_items)
    gen = torch.Generator().manual_seed(item_seed(seed, epoch))
    return torch.randperm(num_items, generator=gen)


def item_seed(*values: int) -> int:
    """A well-spread 63-bit seed from a few integers (numpy's SeedSequence hashing)."""
    state = np.random.SeedSequence([v & 0xFFFFFFFF for v in values]).generate_state(2, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


class MicroBatchSampler(Sampler[list[tuple[int, int]]]):
    """An endless stream of this process's micro-batches, from global micro-batch `start` on.

    Yields lists of `(item index, item seed)`; `SeededItems` turns them into items.

    Args:
        num_items: dataset length.
        batch_size: items per process per micro-batch.
        num_processes, process_index: data-parallel layout; each global batch is split into contiguous slices.
        seed: the run's seed; the order of epoch e is `epoch_order(num_items, seed, e)`.
        start: global micro-batch index to start from (0 for a new run).
        shuffle: False keeps dataset order (for debugging and tests).
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        *,
        num_processes: int = 1,
        process_index: int = 0,
        seed: int = 0,
        start: int = 0,
        shuffle: bool = True,
    ) -> None:
        self.num_items, self.batch_size, self.seed, self.start = num_items, batch_size, seed, start
        self.num_processes, self.process_index, self.shuffle = num_processes, process_index, shuffle
        self.per_epoch = batches_per_epoch(num_items, batch_size, num_processes)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        micro = self.start
        while True:
            epoch, batch = divmod(micro, self.per_epoch)
            order = epoch_order(self.num_items, self.seed, epoch, shuffle=self.shuffle)
            for b in range(batch, self.per_epoch):
                first = (b * self.num_processes + self.process_index) * self.batch_size
                positions = range(first, first + self.batch_size)
                yield [(int(order[p]), item_seed(self.seed, epoch, p)) for p in positions]
            micro = (epoch + 1) * self.per_epoch


class SeededItems(Dataset):
    """Wraps a dataset so that `ds[(index, seed)]` loads item `index` with every global RNG seeded by `seed`.

    The caller's RNG state (python, numpy, torch CPU) is restored afterwards, so loading in the main process
    (num_workers = 0) leaves the training RNG stream untouched.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
        random.seed(seed)
        np.random.seed(seed & 0xFFFFFFFF)
        torch.manual_seed(seed)
        try:
            return self.dataset[index]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    num_processes: int = 1,
    process_index: int = 0,
    seed: int = 0,
    start: int = 0,
    num_workers: int = 0,
    shuffle: bool = True,
    pin_memory: bool = False,
) -> DataLoader:
    """An endless DataLoader over this process's micro-batches from global micro-batch `start` on.

    `num_workers` > 0 loads in background processes (worth it for JPEG decoding; gin bindings reach the
    workers because they are forked; on spawn platforms keep 0). The batches do not depend on it.
    """
    sampler = MicroBatchSampler(
        len(dataset),
        batch_size,
        num_processes=num_processes,
        process_index=process_index,
        seed=seed,
        start=start,
        shuffle=shuffle,
    )
    return DataLoader(
        SeededItems(dataset),
        batch_sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        # Worker base seeds come from this generator, not the global RNG: creating the loader does not
        # consume training randomness (items reseed themselves anyway).
        generator=torch.Generator().manual_seed(item_seed(seed, start)),
    )
