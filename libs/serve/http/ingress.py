"""``@serve.ingress(app)``: a deployment class whose HTTP requests go to an ASGI app (FastAPI, Starlette...).

For a FastAPI app, the routes declared on the class's methods (``@app.get("/") def root(self): ...``) get
the replica's instance as ``self``, as in Ray Serve: each such route is rebuilt, through FastAPI's public
``APIRoute``, with ``self`` turned into a dependency that yields the instance serving the request (the bridge
sets it per request). Routes on plain functions are left as they are. FastAPI is optional; only starlette
and uvicorn (the ``serve`` extra) are needed to serve.
"""
from __future__ import annotations

import copyreg
import functools
import inspect
from typing import Any

from juno.serve.http import require

ASGI_APP_ATTR = "__serve_asgi_app__"  # bridge.asgi_app_of reads it


def ingress(app: Any):
    """Serve ``app`` (an ASGI app) from the decorated deployment class, with the instance bound to the
    class's FastAPI routes."""
    require("starlette")
    if inspect.isclass(app) or not callable(app):
        raise TypeError(f"@serve.ingress takes an ASGI app instance such as fastapi.FastAPI() or "
                        f"starlette.applications.Starlette(), got {app!r}")

    def decorator(cls):
        if not inspect.isclass(cls):
            raise TypeError(f"@serve.ingress(app) decorates a deployment class, not {cls!r}: put it under "
                            "@serve.deployment on a class")
        make_state_picklable()
        if is_fastapi(app):
            bind_class_routes(app, cls)
        setattr(cls, ASGI_APP_ATTR, app)
        return cls

    return decorator


def make_state_picklable() -> None:
    """The app travels to the replicas inside the pickled class, but Starlette's ``State`` (``app.state``)
    cannot be unpickled as it is: its ``__getattr__`` recurses before its dict exists. Pickle it as its
    items instead."""
    from starlette.datastructures import State

    copyreg.pickle(State, reduce_state)


def reduce_state(state) -> tuple:
    return type(state), (dict(state._state),)


def is_fastapi(app: Any) -> bool:
    return any(c.__module__.split(".")[0] == "fastapi" for c in type(app).__mro__)


async def serving_instance() -> Any:
    """The deployment instance that serves the current request: FastAPI's dependency for ``self``."""
    from juno.serve.http.bridge import current_instance

    instance = current_instance.get()
    if instance is None:
        raise RuntimeError("a @serve.ingress route ran outside a Serve replica: serve the app with serve.run")
    return instance


def class_functions(cls) -> set:
    """The plain functions defined on ``cls`` and its bases (what a route on a method points to)."""
    return {value for klass in cls.__mro__ for value in vars(klass).values() if inspect.isfunction(value)}


def bind_class_routes(app, cls) -> None:
    """Rebuild each FastAPI route whose endpoint is a method of ``cls`` so that ``self`` is injected."""
    from fastapi.routing import APIRoute

    methods = class_functions(cls)
    routes = app.router.routes
    for i, route in enumerate(routes):
        if isinstance(route, APIRoute) and route.endpoint in methods:
            routes[i] = rebuilt_route(route, bound_endpoint(route.endpoint))
    app.openapi_schema = None  # regenerate the schema without the "self" query parameter


def bound_endpoint(fn):
    """``fn`` with its first parameter (``self``) given by ``Depends(serving_instance)``; every parameter
    keyword-only (FastAPI passes them by name), annotations resolved against ``fn``'s module."""
    from fastapi import Depends

    try:
        signature = inspect.signature(fn, eval_str=True)
    except (NameError, TypeError):
        signature = inspect.signature(fn)
    params = list(signature.parameters.values())
    if not params:
        raise TypeError(f"{fn.__qualname__} is a route on a @serve.ingress class but takes no 'self'")
    first = params[0].replace(kind=inspect.Parameter.KEYWORD_ONLY, default=Depends(serving_instance),
                              annotation=inspect.Parameter.empty)
    rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind is not inspect.Parameter.VAR_KEYWORD else p
            for p in params[1:] if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    if inspect.iscoroutinefunction(fn):
        async def endpoint(**kwargs):
            return await fn(**kwargs)
    else:
        def endpoint(**kwargs):
            return fn(**kwargs)
    functools.update_wrapper(endpoint, fn)
    endpoint.__signature__ = signature.replace(parameters=[first, *rest])
    return endpoint


def rebuilt_route(route, endpoint):
    """A copy of ``route`` (same path, methods, response model, status, tags ...) serving ``endpoint``."""
    from fastapi.routing import APIRoute

    params = inspect.signature(APIRoute.__init__).parameters
    kwargs = {name: getattr(route, name) for name in params
              if name not in ("self", "path", "endpoint") and hasattr(route, name)}
    return type(route)(route.path, endpoint, **kwargs)
