"""The Juno dashboard: a cluster's state (nodes, resources, tasks, actors, objects,
placement groups, jobs, logs) as one JSON API with live updates over a websocket.

The same tornado handlers (http_api.py) serve it twice: from the standalone
dashboard process (``python -m juno.dashboard``, which ``juno start --head`` and
``juno.init()`` start; server.py, token-protected, with the page in static/) and
from the Jupyter Server extension (``juno.jupyter_extension``, behind Jupyter's
auth, for the JupyterLab sidebar). The data come from state_service.py; the live
updates from event_hub.py.
"""
