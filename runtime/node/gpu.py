"""Discovery of the node's NVIDIA GPUs and the environment given to GPU workers.

Detection is deliberately cheap (an env var, one ``nvidia-smi`` call, or a
directory listing) and never imports torch, which would add seconds to node
start-up.
"""

from __future__ import annotations

import os
import subprocess

__all__ = ["detect_gpu_ids", "detect_gpu_names", "gpu_env", "CUDA_VISIBLE_DEVICES"]

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"

#: Executable queried for GPU information (looked up on PATH at call time).
NVIDIA_SMI = "nvidia-smi"
#: The NVIDIA kernel driver creates one entry per GPU here.
PROC_GPUS_DIR = "/proc/driver/nvidia/gpus"
#: Seconds to wait for nvidia-smi before giving up (it can hang on a sick driver).
NVIDIA_SMI_TIMEOUT_S = 5.0


def _visible_device_tokens() -> list[str] | None:
    """Entries of CUDA_VISIBLE_DEVICES as CUDA would honour them, or None if unset.

    Follows CUDA's rules: an empty value hides every GPU, and the list stops
    at the first invalid (negative) index, so the common "-1" means no GPUs.
    "NoDevFiles" (set by some batch schedulers) also means none.
    """
    raw = os.environ.get(CUDA_VISIBLE_DEVICES)
    if raw is None:
        return None
    raw = raw.strip()
    if raw in ("", "NoDevFiles"):
        return []
    tokens: list[str] = []
    for tok in (t.strip() for t in raw.split(",")):
        if not tok:
            continue
        try:
            if int(tok) < 0:
                break
        except ValueError:
            pass
        if tok not in tokens:
            tokens.append(tok)
    return tokens


def _run_nvidia_smi(query: str) -> list[str] | None:
    """Run an nvidia-smi query; the non-empty output lines, or None on any failure."""
    try:
        proc = subprocess.run(
            [NVIDIA_SMI, f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def _ids_from_nvidia_smi() -> list[int] | None:
    lines = _run_nvidia_smi("index")
    if not lines:
        return None
    try:
        return sorted(int(line) for line in lines)
    except ValueError:
        return None


def _ids_from_proc() -> list[int] | None:
    try:
        entries = [e for e in os.listdir(PROC_GPUS_DIR) if not e.startswith(".")]
    except OSError:
        return None
    return list(range(len(entries))) if entries else None


def detect_gpu_ids() -> list[int]:
    """The GPU ids this node may hand out, as values for CUDA_VISIBLE_DEVICES.

    Order of precedence: CUDA_VISIBLE_DEVICES if set (integer entries are
    returned as-is; if any entry is a UUID/MIG name the result is positions
    ``0..n-1``), then ``nvidia-smi``, then ``/proc/driver/nvidia/gpus``;
    otherwise no GPUs.
    """
    tokens = _visible_device_tokens()
    if tokens is not None:
        try:
            return [int(t) for t in tokens]
        except ValueError:
            return list(range(len(tokens)))
    for probe in (_ids_from_nvidia_smi, _ids_from_proc):
        ids = probe()
        if ids is not None:
            return ids
    return []


def detect_gpu_names() -> list[str]:
    """Best-effort model names of the visible GPUs (e.g. for accelerator_type).

    nvidia-smi lists every GPU regardless of CUDA_VISIBLE_DEVICES, so when
    that variable is set only the GPUs it names (by index or UUID prefix) are
    kept, in its order.  Returns [] on any failure.
    """
    lines = _run_nvidia_smi("index,uuid,name")
    if not lines:
        return []
    gpus: list[tuple[str, str, str]] = []
    for line in lines:
        parts = [p.strip() for p in line.split(",", 2)]
        if len(parts) != 3:
            return []
        gpus.append((parts[0], parts[1], parts[2]))
    tokens = _visible_device_tokens()
    if tokens is None:
        return [name for _, _, name in gpus]
    names: list[str] = []
    for tok in tokens:
        for index, uuid, name in gpus:
            if tok == index or (tok.startswith("GPU-") and uuid.startswith(tok)):
                names.append(name)
                break
    return names


def gpu_env(gpu_ids: list[int]) -> dict[str, str]:
    """Environment variables that pin a worker to its assigned GPUs.

    Returns ``{"CUDA_VISIBLE_DEVICES": "0,1"}`` for ids [0, 1].  With no GPUs
    assigned it returns {} on purpose: the worker's environment is left
    untouched (Ray's long-standing default), rather than hiding all GPUs.
    A reused worker process that previously held GPUs must drop the variable
    itself.
    """
    if not gpu_ids:
        return {}
    return {CUDA_VISIBLE_DEVICES: ",".join(str(int(i)) for i in gpu_ids)}
