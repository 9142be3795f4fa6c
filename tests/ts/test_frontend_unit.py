"""Run the front end's TypeScript unit tests (tests/ts/*.test.ts, vitest) under pytest.

They cover the data layer of the JupyterLab panel and the standalone dashboard
(model merging, throughput, websocket reconnect and pause/resume, API URLs and
errors); running them here keeps the project's single test command complete.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXT = ROOT / "jupyter_extension"
VITEST = EXT / "node_modules" / "vitest" / "vitest.mjs"
BUILD_HINT = "run `bash scripts/build_frontend.sh` (it installs jupyter_extension/node_modules with npm ci)"


def test_typescript_unit_tests_pass():
    node = shutil.which("node")
    assert node, f"node is not on PATH: install Node.js >= 20.19, then {BUILD_HINT}"
    assert VITEST.is_file(), f"{VITEST} is missing: {BUILD_HINT}"
    env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0", "CI": "1"}
    proc = subprocess.run(
        [node, str(VITEST), "run", "--reporter=verbose"],
        cwd=EXT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = f"{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 0, f"TypeScript unit tests failed (exit {proc.returncode}):\n{output}"
    passed = re.search(r"Tests\s+(\d+) passed", output)
    assert passed and int(passed.group(1)) > 0, f"vitest ran no tests:\n{output}"
    assert not re.search(r"\d+ (skipped|todo)", output), f"some TypeScript tests were skipped:\n{output}"


def test_typescript_and_css_sources_are_formatted():
    """prettier --check over the sources and their tests (package.json's format:check);
    `npm run format` in jupyter_extension/ fixes what it reports."""
    node = shutil.which("node")
    prettier = EXT / "node_modules" / "prettier" / "bin" / "prettier.cjs"
    assert node, f"node is not on PATH: install Node.js >= 20.19, then {BUILD_HINT}"
    assert prettier.is_file(), f"{prettier} is missing: {BUILD_HINT}"
    proc = subprocess.run(
        [node, str(prettier), "--check", "src/**/*.ts", "style/*.css", "../tests/ts/*.ts"],
        cwd=EXT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"unformatted front-end sources (run `npm run format` in {EXT}):\n{proc.stdout}{proc.stderr}"
