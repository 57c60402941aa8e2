"""Is a process still running: the one liveness check of fi-spark (the run lock, MLflow run groups, the local
server's leases and supervisor).

A pid alone does not name a process: the kernel reuses pids, so a lock or lease left by a killed process can
point at an unrelated one later. With the start time read from `/proc/<pid>/stat` (field 22, in clock ticks
since boot) beside the pid, a reused pid is told apart. Zombies count as dead (they run no code).

Where there is no /proc (macOS), `os.kill(pid, 0)` answers whether the pid exists, and a start time cannot be
checked: `proc_start_time` is None and `pid_alive` ignores the one it is given.
"""

from __future__ import annotations

import os
from pathlib import Path

_PROC = Path("/proc/self/stat").exists()


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (which may hold spaces and parentheses): field 3 onwards."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def proc_start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/<pid>/stat): with the pid, it names one process."""
    fields = _stat_fields(pid) if _PROC else None
    return fields[19] if fields else None


def pid_alive(pid: int, start_time: str | None = None) -> bool:
    """True when `pid` runs (another user's process included) and, given `start_time`, is the same process that
    had it then; zombies are dead."""
    if pid <= 0:
        return False
    if not _PROC:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z" and (start_time is None or fields[19] == start_time)
