#!/usr/bin/env bash
# Build Juno's front end: the JupyterLab extension and the standalone dashboard page.
#
#   bash scripts/build_frontend.sh [--force]
#
# Steps (in jupyter_extension/):
#   1. npm ci (npm install when there is no package-lock.json yet), skipped while
#      node_modules matches the lock file;
#   2. tsc: type-check and compile src/ into lib/, type-check tests/ts/;
#   3. `.venv/bin/jupyter labextension build` into jupyter_extension/labextension/
#      (scripts/bootstrap.sh links it into the venv, where JupyterLab looks);
#   4. esbuild: bundle src/standalone.ts into runtime/dashboard/static/dashboard.js.
#
# Idempotent and cheap when nothing changed: a hash of the sources, the lock file and
# this script is kept in jupyter_extension/node_modules/.juno-build.sha256 and written
# only after a successful build; --force rebuilds anyway.
# Quiet on success (one line); on failure it prints the failing tool's output and exits 1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXT="$ROOT/jupyter_extension"
VENV="${JUNO_PYTHON_PREFIX:-$ROOT/.venv}"  # where jupyter lives (Binder: the image's env)
STATIC="$ROOT/runtime/dashboard/static"
STAMP="$EXT/node_modules/.juno-build.sha256"
LOCK_STAMP="$EXT/node_modules/.juno-lock.sha256"
LOG_DIR="${TMPDIR:-/tmp}"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

die() {
    echo "build_frontend: ERROR: $*" >&2
    exit 1
}

# run NAME CMD...: run a step with its output in a log; on failure show the log and stop.
run() {
    local name="$1"
    shift
    local log="$LOG_DIR/juno-build-frontend-$name.log"
    if ! "$@" >"$log" 2>&1; then
        echo "build_frontend: ERROR: step '$name' failed: $*" >&2
        echo "build_frontend: its output ($log):" >&2
        if (( $(wc -l <"$log") <= 150 )); then
            cat "$log" >&2
        else
            head -n 50 "$log" >&2
            echo "[... $(( $(wc -l <"$log") - 150 )) lines left out; see $log ...]" >&2
            tail -n 100 "$log" >&2
        fi
        exit 1
    fi
}

# --- tools -------------------------------------------------------------------------
command -v node >/dev/null 2>&1 || die "node not found: install Node.js >= 20.19 (the JupyterLab builder needs it)"
command -v npm >/dev/null 2>&1 || die "npm not found: install npm (it comes with Node.js)"
node -e '
const [maj, min] = process.versions.node.split(".").map(Number);
process.exit((maj === 20 && min >= 19) || (maj === 22 && min >= 12) || maj >= 23 ? 0 : 1);' \
    || die "Node.js $(node --version) is too old: the JupyterLab 4.6 builder (rspack) needs ^20.19 or >=22.12"
[[ -x "$VENV/bin/jupyter" ]] || die "$VENV/bin/jupyter not found: run bash scripts/bootstrap.sh first"
[[ -f "$EXT/package.json" ]] || die "no $EXT/package.json"

# --- up to date? ------------------------------------------------------------------------
wanted_stamp() {
    (
        cd "$ROOT"
        find jupyter_extension/src jupyter_extension/style jupyter_extension/schema tests/ts \
            -type f \( -name '*.ts' -o -name '*.css' -o -name '*.js' -o -name '*.json' \) -print0 \
            | sort -z | xargs -0 sha256sum
        sha256sum jupyter_extension/package.json jupyter_extension/tsconfig.json \
            scripts/build_frontend.sh
        [[ -f jupyter_extension/package-lock.json ]] && sha256sum jupyter_extension/package-lock.json
        echo "root=$ROOT"
    ) | sha256sum | cut -d' ' -f1
}

outputs_present() {
    [[ -f "$EXT/labextension/package.json" && -f "$STATIC/dashboard.js" ]]
}

want="$(wanted_stamp)"
if [[ $FORCE == 0 && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] && outputs_present; then
    exit 0
fi
started=$SECONDS
cd "$EXT"

# --- 1. node_modules -------------------------------------------------------------------
export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
if [[ ! -f package-lock.json ]]; then
    run npm-install npm install
elif [[ ! -d node_modules || "$(cat "$LOCK_STAMP" 2>/dev/null)" != "$(sha256sum package-lock.json | cut -d' ' -f1)" ]]; then
    run npm-ci npm ci
fi
sha256sum package-lock.json | cut -d' ' -f1 >"$LOCK_STAMP"
rm -f "$STAMP"

# --- 2. type-check and compile ------------------------------------------------------------
run tsc node_modules/.bin/tsc -p tsconfig.json
run tsc-tests node_modules/.bin/tsc --noEmit -p "$ROOT/tests/ts/tsconfig.json"

# --- 3. the JupyterLab extension -----------------------------------------------------------
# `jupyter labextension build` runs `jupyter-builder` from PATH: put the venv first.
rm -rf "$EXT/labextension/static"
run labextension env PATH="$VENV/bin:$PATH" "$VENV/bin/jupyter" labextension build "$EXT"
[[ -f "$EXT/labextension/package.json" ]] || die "labextension build wrote no $EXT/labextension/package.json"

# --- 4. the standalone page's script ---------------------------------------------------------
mkdir -p "$STATIC"
run esbuild node_modules/.bin/esbuild src/standalone.ts --bundle --minify --format=iife \
    --target=es2020 --loader:.css=text --sourcemap --log-level=warning \
    --outfile="$STATIC/dashboard.js"

echo "$want" >"$STAMP"
labext_kb=$(( $(du -sk "$EXT/labextension/static" | cut -f1) ))
page_kb=$(( $(stat -c %s "$STATIC/dashboard.js") / 1024 ))
echo "build_frontend: built in $((SECONDS - started))s (labextension ${labext_kb} KiB," \
     "dashboard.js ${page_kb} KiB)" >&2
