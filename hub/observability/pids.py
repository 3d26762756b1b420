"""Whether a process still runs, asked by process id: for files and slots that processes of a
host leave behind (metrics gauges, the API load board)."""

import os
from pathlib import Path


def pid_exists(pid: int) -> bool:
    """Whether some process has id `pid` (perhaps another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def process_start(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (/proc/<pid>/stat, field 22);
    None where that cannot be read (no such process, or no /proc). With the id, it names one
    process: the kernel gives a dead process's id to later ones."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_bytes()
        # The command name (field 2) may hold spaces and parentheses: count after its end.
        return int(stat_line[stat_line.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None
