"""``python -m juno ...``: the same as the ``juno`` command."""
import sys

from juno.cli.commands import main

if __name__ == "__main__":
    sys.exit(main())
