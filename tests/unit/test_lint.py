"""The code base has no undefined names, unused imports or syntax errors (ruff's F and E9 rules)."""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_ruff_finds_no_mistakes():
    ruff = shutil.which("ruff", path=os.path.dirname(sys.executable)) or shutil.which("ruff")
    assert ruff, "ruff is a test dependency (pip install -e '.[test]'); it must be installed"
    result = subprocess.run([ruff, "check", "runtime", "tests", "examples"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
