"""Every notebook in notebooks/ runs top to bottom in a real kernel (the venv's python) with
nbclient, without an error, and prints what it is meant to show."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client import KernelManager
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 60

# What each notebook must print (a regex over its cells' stdout); a notebook not listed
# here must at least print something.
EXPECTED = {
    "01_core_tour.ipynb": r"squares: \[0, 1, 4, 9, 16, 25\].*counter: \[1, 2, 3\].*equal: True \| writeable: False"
                          r".*CUDA_VISIBLE_DEVICES: 0.*caught a remote ZeroDivisionError: True.*sum of squares: 2470",
    "02_magics_and_sessions.ipynb": r"total: 285 \| ran in another process: True"
                                    r".*result: hello from a background cell.*history pulled back: \[42, 21\]",
    "03_cluster.ipynb": r"nodes alive: 3.*SPREAD ran on: \['b', 'c', 'head'\].*pinned to c ran on: c"
                        r".*bundles on different nodes: True.*started on b, finished on: c",
    "04_data_batch_inference.ipynb": r"predicted rows: 4000 \| accuracy: 0\.9\d.*ReadRange->MapBatches\(features\)"
                                     r".*MapBatches\(Predictor\)",
    "05_train_ddp.ipynb": r"first run: epoch 7 \| loss 0\.\d+ \| accuracy 0\.9\d.*checkpoints kept: \['checkpoint_000007', "
                          r"'checkpoint_000008'\].*resumed run trained epochs 8\.\.11 \| accuracy 0\.9\d"
                          r".*held-out accuracy: (0\.9\d|1\.00)",
    "06_tune_asha.ipynb": r"trials: 8 \| stopped early by ASHA: [1-7] \| iterations run: \d+ of 80"
                          r".*best config: lr=0\.\d+, hidden=\d+ \| val_loss 0\.\d+ \| accuracy 0\.9\d"
                          r".*held-out accuracy of the best model: 0\.9\d",
    "07_serve_model.ipynb": r"HTTP: \{'label': [01]\} for \[.*\], true label [01].*handle: 64 answers \| accuracy (0\.9\d|1\.00)"
                            r".*composed over HTTP: label [01] \(the same as alone: True\)"
                            r".*app classifier: RUNNING \| replicas \{'Classifier': \{'RUNNING': 2\}\}"
                            r".*app pipeline: RUNNING",
    "08_rl_ppo_cartpole.ipynb": r"after \d+ iterations \(\d+ env steps\): mean return (\d{3}|[5-9]\d)"
                                r".*greedy episode returns: \[\d+, \d+\]"
                                r".*restored PPO: same greedy actions: True",
}


def _stdout(nb) -> str:
    return "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                   for out in cell.get("outputs", []) if out.get("output_type") == "stream"
                   and out.get("name") == "stdout")


def test_notebooks_found():
    assert len(NOTEBOOKS) >= 3, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, _juno_leak_guard):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in nb.cells if c.cell_type == "code"), f"{path.name} is stored with outputs"
    km = KernelManager(kernel_name="python3")
    km.kernel_spec.argv[0] = sys.executable  # the venv's python, whatever kernelspec is installed
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, startup_timeout=60,
                            resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()  # raises CellExecutionError on the first failing cell
    finally:
        _juno_leak_guard.note_processes()
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    out = _stdout(nb)
    expected = EXPECTED.get(path.name, r"\S")
    assert re.search(expected, out, re.S), f"{path.name}: expected /{expected}/ in its output:\n{out}"
