#!/usr/bin/env bash
# Set up .venv (scripts/bootstrap.sh) and run the quick-start demo on a local cluster.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

JUNO_BOOTSTRAP_BROWSER=0 JUNO_BOOTSTRAP_FRONTEND=0 bash scripts/bootstrap.sh
exec .venv/bin/python examples/quickstart.py "$@"
