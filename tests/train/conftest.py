import pytest

from tests.conftest import one_thread

_one_thread = pytest.fixture(autouse=True)(one_thread)


@pytest.fixture(autouse=True)
def _fresh_accelerate():
    """`train` builds an Accelerator; its process-wide state must not leak into the next test."""
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
