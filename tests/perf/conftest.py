import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors run faster on one thread, and stay fast when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
