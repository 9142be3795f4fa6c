"""What every Serve test module shares: Serve is shut down when a module ends (its controller, proxies
and replicas are detached actors, which the suite's leak check would otherwise find), and the
``serve`` fixture for tests that take the package on the shared cluster."""
import pytest


@pytest.fixture
def serve(juno_shared):
    from juno import serve as serve_module

    yield serve_module


@pytest.fixture(scope="module", autouse=True)
def _serve_shutdown():
    yield
    import juno
    from juno import serve

    if juno.is_initialized():
        serve.shutdown()
