"""The ``juno`` command: its subcommands (start, stop, status, the state API, the dashboard) and the microbenchmark."""
from juno.cli.commands import main

__all__ = ["main"]
