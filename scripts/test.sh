#!/usr/bin/env bash
# Set up .venv (scripts/bootstrap.sh) and run the test suite.
#
#   bash scripts/test.sh                  # everything under tests/
#   bash scripts/test.sh -k actor -x      # extra arguments go to pytest
#   bash scripts/test.sh tests/unit       # only these paths
#
# The per-test timeout comes from [tool.pytest.ini_options] in pyproject.toml
# (pytest-timeout); JUNO_TEST_TIMEOUT=<seconds> overrides it for one run.
# The whole run is bounded by JUNO_SUITE_TIMEOUT seconds (default 3600), so a hang
# that escapes the per-test timeout still ends with a clear failure (--foreground
# keeps Ctrl-C working when run from a terminal).
# "No tests collected" (pytest exit code 5) is a failure, not a pass.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/bootstrap.sh

args=(-p no:cacheprovider)
if [[ -n "${JUNO_TEST_TIMEOUT:-}" ]]; then
    args+=("--timeout=$JUNO_TEST_TIMEOUT")
fi
if [[ "${CI:-}" == "true" ]]; then
    args+=(--durations=15)
fi

# Run tests/ unless the caller named test paths of their own (tests/unit, a file,
# file::test), so `bash scripts/test.sh tests/unit/test_x.py` runs just that file.
targets=(tests)
for arg in "$@"; do
    if [[ "$arg" != -* && -e "${arg%%::*}" ]]; then
        targets=()
        break
    fi
done

suite_timeout="${JUNO_SUITE_TIMEOUT:-3600}"
start=$SECONDS
set +e
timeout --foreground --signal=TERM --kill-after=30 "$suite_timeout" \
    .venv/bin/python -m pytest "${targets[@]}" "${args[@]}" "$@" </dev/null
rc=$?
set -e
elapsed=$((SECONDS - start))

case "$rc" in
    0)
        echo "test.sh: PASSED (${elapsed}s)"
        exit 0
        ;;
    5)
        echo "test.sh: FAILED: pytest collected no tests (exit code 5); an empty run is not a pass (${elapsed}s)" >&2
        exit 1
        ;;
    124 | 137)
        echo "test.sh: FAILED: the suite did not finish within ${suite_timeout}s (JUNO_SUITE_TIMEOUT) and was killed (exit code $rc)" >&2
        exit 1
        ;;
    *)
        echo "test.sh: FAILED (pytest exit code $rc, ${elapsed}s)" >&2
        exit "$rc"
        ;;
esac
