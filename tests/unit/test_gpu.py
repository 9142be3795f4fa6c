"""Unit tests for juno.node.gpu: GPU detection precedence and worker env."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from juno.node import gpu


def _fake_nvidia_smi(bin_dir: Path, body: str) -> None:
    """Put an executable ``nvidia-smi`` shell script into ``bin_dir``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "nvidia-smi"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


# Answers queries the way the real nvidia-smi does (it ignores CUDA_VISIBLE_DEVICES).
_SMI_FOUR_GPUS = r"""
case "$1" in
  --query-gpu=index)
    printf '0\n1\n2\n3\n' ;;
  --query-gpu=index,uuid,name)
    printf '0, GPU-aaaa-0000, NVIDIA A100-SXM4-40GB\n'
    printf '1, GPU-bbbb-1111, NVIDIA A100-SXM4-40GB\n'
    printf '2, GPU-cccc-2222, NVIDIA H100 80GB HBM3\n'
    printf '3, GPU-dddd-3333, NVIDIA H100 80GB HBM3\n' ;;
  *) exit 2 ;;
esac
"""


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CUDA_VISIBLE_DEVICES, no real nvidia-smi, no real /proc GPU entries."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(gpu, "PROC_GPUS_DIR", str(tmp_path / "no-such-proc-dir"))
    return bin_dir


# --- CUDA_VISIBLE_DEVICES ------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2,3", [2, 3]),
        ("0", [0]),
        (" 1 , 0 ", [1, 0]),
        ("", []),
        ("   ", []),
        ("-1", []),
        ("0,-1,1", [0]),
        ("NoDevFiles", []),
        ("1,1,2", [1, 2]),
        ("GPU-aaaa,GPU-bbbb", [0, 1]),
        ("MIG-1234", [0]),
    ],
)
def test_cuda_visible_devices_wins(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, value: str, expected: list[int]
) -> None:
    _fake_nvidia_smi(isolated, _SMI_FOUR_GPUS)  # must not be consulted
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    assert gpu.detect_gpu_ids() == expected


# --- nvidia-smi -------------------------------------------------------------------------


def test_nvidia_smi_is_used_when_env_unset(isolated: Path) -> None:
    _fake_nvidia_smi(isolated, _SMI_FOUR_GPUS)
    assert gpu.detect_gpu_ids() == [0, 1, 2, 3]


def test_nvidia_smi_gets_the_documented_arguments(isolated: Path, tmp_path: Path) -> None:
    log = tmp_path / "args.txt"
    _fake_nvidia_smi(isolated, f'echo "$@" > {log}\nprintf "0\\n"\n')
    assert gpu.detect_gpu_ids() == [0]
    assert log.read_text().split() == ["--query-gpu=index", "--format=csv,noheader"]


def test_nvidia_smi_failure_falls_through_to_proc(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_nvidia_smi(isolated, "echo 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    proc = tmp_path / "proc-gpus"
    for bus in ("0000:17:00.0", "0000:65:00.0", "0000:ca:00.0"):
        (proc / bus).mkdir(parents=True)
    monkeypatch.setattr(gpu, "PROC_GPUS_DIR", str(proc))
    assert gpu.detect_gpu_ids() == [0, 1, 2]


def test_nvidia_smi_garbage_falls_through(isolated: Path) -> None:
    _fake_nvidia_smi(isolated, "echo 'No devices were found'\n")
    assert gpu.detect_gpu_ids() == []


def test_nvidia_smi_timeout_falls_through(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_nvidia_smi(isolated, "exec /bin/sleep 10\n")
    monkeypatch.setattr(gpu, "NVIDIA_SMI_TIMEOUT_S", 0.2)
    proc = tmp_path / "proc-gpus"
    (proc / "0000:17:00.0").mkdir(parents=True)
    monkeypatch.setattr(gpu, "PROC_GPUS_DIR", str(proc))
    start = time.monotonic()
    assert gpu.detect_gpu_ids() == [0]
    assert time.monotonic() - start < 5  # did not wait for the hung nvidia-smi


def test_missing_binary_and_no_proc_means_no_gpus(isolated: Path) -> None:
    assert gpu.detect_gpu_ids() == []
    assert gpu.detect_gpu_names() == []


def test_empty_proc_dir_means_no_gpus(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    proc = tmp_path / "proc-gpus"
    proc.mkdir()
    monkeypatch.setattr(gpu, "PROC_GPUS_DIR", str(proc))
    assert gpu.detect_gpu_ids() == []


# --- names ---------------------------------------------------------------------------------


def test_gpu_names_all(isolated: Path) -> None:
    _fake_nvidia_smi(isolated, _SMI_FOUR_GPUS)
    assert gpu.detect_gpu_names() == [
        "NVIDIA A100-SXM4-40GB",
        "NVIDIA A100-SXM4-40GB",
        "NVIDIA H100 80GB HBM3",
        "NVIDIA H100 80GB HBM3",
    ]


@pytest.mark.parametrize(
    "value, expected",
    [
        ("3,0", ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"]),
        ("GPU-cccc", ["NVIDIA H100 80GB HBM3"]),
        ("", []),
        ("-1", []),
        ("7", []),
    ],
)
def test_gpu_names_follow_cuda_visible_devices(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    _fake_nvidia_smi(isolated, _SMI_FOUR_GPUS)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    assert gpu.detect_gpu_names() == expected


def test_gpu_names_failure_is_empty(isolated: Path) -> None:
    _fake_nvidia_smi(isolated, "exit 1\n")
    assert gpu.detect_gpu_names() == []


# --- worker environment ----------------------------------------------------------------------


def test_gpu_env() -> None:
    assert gpu.gpu_env([0, 1]) == {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert gpu.gpu_env([3]) == {"CUDA_VISIBLE_DEVICES": "3"}
    assert gpu.gpu_env([]) == {}


def test_gpu_env_round_trips_through_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", gpu.gpu_env([5, 2])["CUDA_VISIBLE_DEVICES"])
    assert gpu.detect_gpu_ids() == [5, 2]


def test_does_not_import_torch() -> None:
    code = "import sys, juno.node.gpu as g; g.gpu_env([0]); g.detect_gpu_ids(); g.detect_gpu_names(); print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ},
    )
    assert out.stdout.strip() == "False"
