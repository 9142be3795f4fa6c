#!/usr/bin/env bash
# Set up (or refresh) the project virtualenv at <repo>/.venv.
#
#   bash scripts/bootstrap.sh
#
# Idempotent and cheap when nothing changed: the venv is created when missing (or
# broken), and `pip install --upgrade --upgrade-strategy eager -c constraints.txt -e '.[test]'`
# (the newest versions pyproject.toml and constraints.txt allow, today) runs only when
#   - pyproject.toml, constraints.txt, the install spec or the repo location changed since
#     the last successful install (a hash of those is kept in a stamp file inside .venv,
#     written only after an install succeeded, so a failed run retries), or
#   - CI=true: CI tests what a fresh install resolves today, never a cached environment, or
#   - the last resolution is older than JUNO_BOOTSTRAP_REFRESH_HOURS (default 24), so a
#     developer's venv follows new releases of the dependencies within a day too. Offline,
#     that daily refresh only warns and keeps the venv as it is (for another day).
# After each install it prints the versions of the key dependencies, and what changed, so a
# failure log shows the drift. torch stays pinned by constraints.txt.
#
# Quiet otherwise; on failure it says what failed and prints the tail of the pip log.
#
# Then it builds the front end (the JupyterLab extension and the standalone dashboard
# page, scripts/build_frontend.sh) when its sources changed, links the extension into
# the venv, and installs Debian's chromium for the browser tests when it is missing.
#
# Environment:
#   PYTHON                   interpreter used to create the venv (default: python3, needs >= 3.10)
#   JUNO_BOOTSTRAP_BROWSER   0: don't install chromium (the demo needs no browser)
#   JUNO_BOOTSTRAP_FRONTEND  0: don't build the front end (the demo needs no Node.js)
#   JUNO_BOOTSTRAP_REFRESH_HOURS  resolve the dependencies again when the last resolution is
#                            older than this (default 24; 0: every run, as under CI=true)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
STAMP="$VENV/.juno-bootstrap.sha256"
LOG="$VENV/.juno-bootstrap.log"
BASE_PYTHON="${PYTHON:-python3}"
INSTALL_SPEC=".[test]"          # what goes into the venv (editable)
STAMP_VERSION="1"               # bump to force a re-install everywhere

die() {
    echo "bootstrap: ERROR: $*" >&2
    exit 1
}

cd "$ROOT"
[[ -f pyproject.toml ]] || die "no pyproject.toml in $ROOT"
[[ -f constraints.txt ]] || die "no constraints.txt in $ROOT"

# Two scripts bootstrapping at once (demo.sh and test.sh, say) must not run pip
# into the same venv concurrently.
if command -v flock >/dev/null 2>&1; then
    lock_id="$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)"
    exec 9>"${TMPDIR:-/tmp}/juno-bootstrap-$lock_id.lock"
    flock -w 900 9 || die "timed out waiting for another bootstrap of $ROOT to finish"
fi

# --- 1. the venv itself ------------------------------------------------------------
venv_works() {
    [[ -x "$PY" ]] && "$PY" -c 'import sys, pip' >/dev/null 2>&1
}

if ! venv_works; then
    command -v "$BASE_PYTHON" >/dev/null 2>&1 || die "'$BASE_PYTHON' not found (set PYTHON=/path/to/python3.10+)"
    "$BASE_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
        || die "$BASE_PYTHON is $("$BASE_PYTHON" -V 2>&1); Juno needs Python >= 3.10"
    venv_flag=""
    if [[ -e "$VENV" ]]; then
        echo "bootstrap: $VENV exists but does not work; recreating it" >&2
        venv_flag="--clear"
    fi
    "$BASE_PYTHON" -m venv $venv_flag "$VENV" \
        || die "'$BASE_PYTHON -m venv' failed (on Debian/Ubuntu: apt-get install -y python3-venv)"
    venv_works || die "the new venv at $VENV has no working python/pip"
fi

# --- 2. the project and its test dependencies ---------------------------------------
wanted_stamp() {
    {
        echo "juno-bootstrap v$STAMP_VERSION"
        echo "root=$ROOT"
        echo "spec=$INSTALL_SPEC"
        echo "--- pyproject.toml"
        cat pyproject.toml
        echo "--- constraints.txt"
        cat constraints.txt
    } | sha256sum | cut -d' ' -f1
}

# The stamp can match while the venv was changed behind our back (a package
# uninstalled, the editable install pointing elsewhere). This is a cheap check that
# imports nothing from the project.
install_looks_sane() {
    "$PY" - "$ROOT" >/dev/null 2>&1 <<'EOF'
import importlib.util, os, sys
root = os.path.realpath(sys.argv[1])
spec = importlib.util.find_spec("juno")
assert spec is not None and spec.origin, "juno is not installed"
origin = os.path.realpath(spec.origin)
assert origin.startswith(os.path.join(root, "runtime") + os.sep), origin
for name in ("pytest", "pytest_timeout"):
    assert importlib.util.find_spec(name) is not None, name
EOF
}

# The versions of the dependencies whose drift has broken Juno before, one "name version" a line.
key_versions() {
    "$PY" - <<'EOF' 2>/dev/null || true
from importlib import metadata
for name in ("cloudpickle", "pyzmq", "numpy", "psutil", "tornado", "torch", "pyarrow", "pytest",
             "ipykernel", "jupyter-client", "jupyter-server", "jupyterlab", "nbclient", "playwright"):
    try:
        print(name, metadata.version(name))
    except metadata.PackageNotFoundError:
        print(name, "-")
EOF
}

# One line: each key dependency's version, with "(was X)" where the install changed it.
report_versions() {
    local before="$1" name version old parts=()
    while read -r name version; do
        [[ -n "$name" ]] || continue
        old="$(awk -v n="$name" '$1 == n {print $2}' <<<"$before")"
        if [[ -n "$old" && "$old" != "$version" ]]; then
            parts+=("$name $version (was $old)")
        else
            parts+=("$name $version")
        fi
    done <<<"$(key_versions)"
    local IFS=","
    echo "bootstrap: resolved: ${parts[*]}" | sed 's/,/, /g' >&2
}

# Why the dependencies are resolved again now; nothing when they need not be.
resolve_reason() {
    local hours="${JUNO_BOOTSTRAP_REFRESH_HOURS:-24}"
    [[ "$hours" =~ ^[0-9]+$ ]] || die "JUNO_BOOTSTRAP_REFRESH_HOURS must be a whole number of hours, got '$hours'"
    if [[ "$want" != "$have" ]]; then
        echo "pyproject.toml or constraints.txt changed"
    elif ! install_looks_sane; then
        echo "the install is incomplete"
    elif [[ "${CI:-}" == "true" ]]; then
        echo "CI resolves the newest allowed versions on every run"
    elif [[ -z "$(find "$STAMP" -mmin "-$((hours * 60))" 2>/dev/null)" ]]; then
        echo "the last resolution is more than $hours h old"
    fi
}

want="$(wanted_stamp)"
have="$(cat "$STAMP" 2>/dev/null || true)"
reason="$(resolve_reason)"

if [[ -n "$reason" ]]; then
    echo "bootstrap: pip install --upgrade -e '$INSTALL_SPEC' into .venv ($reason; log: $LOG) ..." >&2
    # Only the daily refresh of a working venv may fail softly (offline): the venv stays usable.
    soft=0
    if [[ "$want" == "$have" && "${CI:-}" != "true" ]] && install_looks_sane; then
        soft=1
    fi
    before="$(key_versions)"
    # The extension's link (step 3) must not be followed by pip: it would remove the build
    # output when it uninstalls the old copy. Step 3 puts the link back.
    if [[ -L "$VENV/share/jupyter/labextensions/juno-jupyterlab" ]]; then
        rm -f "$VENV/share/jupyter/labextensions/juno-jupyterlab"
    fi
    if ! PIP_NO_INPUT=1 "$PY" -m pip install --disable-pip-version-check --no-input \
            --upgrade --upgrade-strategy eager -c constraints.txt -e "$INSTALL_SPEC" >"$LOG" 2>&1; then
        if [[ "$soft" == 1 ]] && install_looks_sane; then
            echo "bootstrap: warning: could not resolve the dependencies again (offline?); keeping" \
                 "the venv as it is for another day. Last lines of $LOG:" >&2
            tail -n 5 "$LOG" >&2
            touch "$STAMP"
        else
            rm -f "$STAMP"
            echo "bootstrap: ERROR: pip install --upgrade -c constraints.txt -e '$INSTALL_SPEC' failed." >&2
            echo "bootstrap: last 200 lines of $LOG:" >&2
            tail -n 200 "$LOG" >&2
            exit 1
        fi
    elif ! install_looks_sane; then
        rm -f "$STAMP"
        echo "bootstrap: ERROR: pip succeeded but juno (editable, from $ROOT/runtime)," \
             "pytest or pytest-timeout is not importable from .venv" >&2
        "$PY" - "$ROOT" <<'EOF' >&2 || true
import importlib.util, sys
for name in ("juno", "pytest", "pytest_timeout"):
    spec = importlib.util.find_spec(name)
    print(f"  {name}: {spec.origin if spec else 'NOT FOUND'}")
EOF
        exit 1
    else
        echo "$want" >"$STAMP"
        report_versions "$before"
    fi
fi

# --- 3. the front end: the JupyterLab extension and the standalone dashboard page ---------
# scripts/build_frontend.sh (npm ci, tsc, `jupyter labextension build`, esbuild) keeps a
# stamp of what it built and returns at once when nothing changed.
build_frontend() {
    [[ -f scripts/build_frontend.sh ]] || die "scripts/build_frontend.sh is missing"
    bash scripts/build_frontend.sh || die "the front-end build failed (see above)"
    [[ -f jupyter_extension/labextension/package.json && -f runtime/dashboard/static/dashboard.js ]] \
        || die "the front-end build left no jupyter_extension/labextension/ or runtime/dashboard/static/dashboard.js"
}

# JupyterLab finds prebuilt extensions under <prefix>/share/jupyter/labextensions, and the
# server extension through a config file under <prefix>/etc/jupyter. A wheel installs both
# as data files; for this editable install the extension is a link to the build output
# (what `jupyter labextension develop` does), so a rebuild needs no re-install.
enable_jupyter_extensions() {
    local labext="$VENV/share/jupyter/labextensions/juno-jupyterlab"
    local target="$ROOT/jupyter_extension/labextension"
    if [[ -d "$target" && "$(readlink "$labext" 2>/dev/null || true)" != "$target" ]]; then
        mkdir -p "$(dirname "$labext")"
        rm -rf "$labext"
        ln -s "$target" "$labext"
    fi
    local conf_dir="$VENV/etc/jupyter/jupyter_server_config.d"
    mkdir -p "$conf_dir"
    cmp -s jupyter_extension/etc/juno.json "$conf_dir/juno.json" \
        || cp jupyter_extension/etc/juno.json "$conf_dir/juno.json"
}

# Browser tests drive Debian's Chromium through playwright (never a downloaded browser).
ensure_chromium() {
    [[ -x /usr/bin/chromium ]] && return 0
    command -v apt-get >/dev/null 2>&1 || die "browser tests need /usr/bin/chromium and there is no apt-get here"
    [[ "$(id -u)" == 0 ]] || die "browser tests need /usr/bin/chromium: run 'apt-get install -y chromium' as root"
    echo "bootstrap: apt-get install -y chromium (for the browser tests) ..." >&2
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >"$VENV/.juno-apt.log" 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get update >>"$VENV/.juno-apt.log" 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >>"$VENV/.juno-apt.log" 2>&1 || {
            tail -n 40 "$VENV/.juno-apt.log" >&2
            die "apt-get install -y chromium failed (log: $VENV/.juno-apt.log)"
        }
    fi
    [[ -x /usr/bin/chromium ]] || die "chromium installed but /usr/bin/chromium is missing"
}

if [[ "${JUNO_BOOTSTRAP_FRONTEND:-1}" == 1 ]]; then
    build_frontend
fi
enable_jupyter_extensions
if [[ "${JUNO_BOOTSTRAP_BROWSER:-1}" == 1 ]]; then
    ensure_chromium
fi
