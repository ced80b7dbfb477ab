"""The serving processes the benchmarks compare: their CPU time from /proc, and stopping them.

utime + stime from /proc/<pid>/stat, summed over a process and its descendants (a server's
workers, an engine core), read before and after a run: the CPU a system spent on it.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from `state` on (3rd field)


def process_tree(root: int) -> list[int]:
    """`root` first, then all its descendants (from every /proc/<pid>/stat's parent pid)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                children[int(fields[1])].append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (fields 14 and 15 of /proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def stop_process(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """SIGTERM, SIGKILL after `timeout`; then whatever is left of its process group when it
    leads one (`start_new_session`: an engine core whose parent died before stopping it is
    reparented to init, but stays in the group; a process that leads no group has none)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
