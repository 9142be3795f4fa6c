"""Juno in Jupyter: a Jupyter Server extension serving the dashboard's state API under
``{base_url}juno/api/`` (jupyter_extension/handlers.py) behind Jupyter's own auth, and
the JupyterLab sidebar that shows it (the TypeScript in src/, built into labextension/).

Enabled by jupyter_extension/etc/juno.json (installed into jupyter_server_config.d),
or ``jupyter server extension enable juno.jupyter_extension``.
"""
from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "juno.jupyter_extension"}]


def _jupyter_labextension_paths() -> list[dict]:
    return [{"src": "labextension", "dest": "juno-jupyterlab"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from juno.jupyter_extension import handlers

    handlers.setup(serverapp)
    serverapp.log.info("Juno extension: the cluster state API is at %sjuno/api/",
                       serverapp.web_app.settings.get("base_url", "/"))


# Jupyter Server 1.x's name for the same hook.
load_jupyter_server_extension = _load_jupyter_server_extension
