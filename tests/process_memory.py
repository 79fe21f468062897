"""A process's memory as the kernel reports it (Linux `/proc/<pid>/status`), for the tests
and benches that watch it."""

from __future__ import annotations

from pathlib import Path


def memory_mb(pid: int | None = None, field: str = "VmRSS") -> float:
    """Resident memory now (`VmRSS`) or at its peak so far (`VmHWM`) of process `pid` (this
    one when None), in MB. OSError when the process is gone; LookupError when the kernel
    gives no such line (a process that exited and was not waited for yet)."""
    status = Path(f"/proc/{'self' if pid is None else pid}/status").read_text()
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"no {field} for process {pid or 'self'}")
