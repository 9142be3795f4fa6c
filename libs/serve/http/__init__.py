"""Serve's HTTP side: the proxy actor on each node (``proxy``), its ASGI front on uvicorn (``server``), the
route table (``routes``), the bridge that turns an HTTP payload into a Starlette request inside a replica and
its answer back into a payload (``bridge``), and ``@serve.ingress`` (``ingress``).

Nothing here is imported eagerly: starlette and uvicorn are the ``serve`` extra, needed only where HTTP runs.
"""

INSTALL_HINT = "pip install 'juno[serve]' (uvicorn[standard]>=0.30 and starlette>=0.37)"


def require(module: str) -> None:
    """Import ``module`` or fail saying which extra to install."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"juno.serve's HTTP support needs {module}, which is not installed: {INSTALL_HINT}") from exc
