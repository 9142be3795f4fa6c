"""Fixtures of the kernel tests: real ipykernels over the Jupyter protocol."""
import pytest

from kernel_harness import KernelHarness


@pytest.fixture
def own_kernel(_juno_leak_guard):
    """A kernel of its own per test; the leak check runs after it and its cluster are shut down."""
    k = KernelHarness()
    try:
        yield k
        _juno_leak_guard.note_processes()
    finally:
        k.close()
