import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """The tiny networks run faster on one thread, and stay fast when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _fresh_accelerate():
    """`train` builds an Accelerator; its process-wide state must not leak into the next test."""
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
