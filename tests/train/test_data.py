import random

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from condgen.train.data import MicroBatchSampler, SeededItems, batches_per_epoch, epoch_order, make_loader


class RandomItems(Dataset):
    """Items that draw from all three global RNGs, like random crops and flips do."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> dict:
        return {"i": i, "aug": torch.rand(()).item() + random.random() + np.random.rand()}


def stream(sampler, n):
    it = iter(sampler)
    return [next(it) for _ in range(n)]


def test_epoch_order_depends_on_seed_and_epoch_only():
    assert torch.equal(epoch_order(10, 3, 1), epoch_order(10, 3, 1))
    assert not torch.equal(epoch_order(10, 3, 1), epoch_order(10, 3, 2))
    assert not torch.equal(epoch_order(10, 3, 1), epoch_order(10, 4, 1))
    assert sorted(epoch_order(10, 3, 1).tolist()) == list(range(10))
    assert epoch_order(5, 0, 0, shuffle=False).tolist() == [0, 1, 2, 3, 4]


def test_resumed_stream_equals_the_tail_of_the_full_stream():
    full = stream(MicroBatchSampler(10, 3, seed=1), 9)  # 3 batches per epoch: crosses two epoch ends
    assert stream(MicroBatchSampler(10, 3, seed=1, start=4), 5) == full[4:]


def test_processes_split_each_global_batch_without_overlap():
    one = stream(MicroBatchSampler(12, 4, seed=0), 3)
    ranks = [stream(MicroBatchSampler(12, 2, num_processes=2, process_index=r, seed=0), 3) for r in range(2)]
    for b in range(3):
        assert ranks[0][b] + ranks[1][b] == one[b]  # same global order, contiguous slices


def test_batches_per_epoch_and_too_small_dataset():
    assert batches_per_epoch(10, 3, 1) == 3  # the incomplete batch is dropped, as officially
    with pytest.raises(ValueError, match="lower train.batch_size"):
        batches_per_epoch(5, 4, 2)


def test_seeded_items_reproduce_augmentation_and_restore_the_rng():
    items = SeededItems(RandomItems())
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b = items[(3, 77)], items[(3, 77)]
    assert a == b and items[(3, 78)] != a
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_batches_do_not_depend_on_workers_or_resume(workers):
    def batches(start, n, num_workers):
        it = iter(make_loader(RandomItems(), 2, seed=5, start=start, num_workers=num_workers))
        return [next(it) for _ in range(n)]

    ref = batches(0, 6, 0)
    got = batches(2, 4, workers)
    for r, g in zip(ref[2:], got, strict=True):
        assert torch.equal(r["i"], g["i"])
        assert torch.allclose(r["aug"], g["aug"], rtol=0, atol=0)
