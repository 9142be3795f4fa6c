#!/usr/bin/env bash
# Run Juno's microbenchmark (Ray's `ray microbenchmark` rows) from the repo root.
# Usage: benchmarks/run_microbenchmark.sh [--filter SUBSTRING] [--duration S] [--json PATH] [--num-cpus N]
#        benchmarks/run_microbenchmark.sh --compare-ray /work/ray-venv/bin/python [--repeat N] [--markdown PATH]
# (Ray in a separate virtual environment: see benchmarks/README.md)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ ! -d .venv ]; then
    bash scripts/bootstrap.sh
fi

exec .venv/bin/juno microbenchmark "$@"
