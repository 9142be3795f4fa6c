"""``python -m juno ...``: the same as the ``juno`` command."""
import sys

from juno.cli import main

if __name__ == "__main__":
    sys.exit(main())
