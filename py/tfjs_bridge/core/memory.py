"""Resident memory, read from /proc (Linux): the one reader of a process's
peak (VmHWM) and current (VmRSS) resident set, for this process or a tree."""

from __future__ import annotations

from pathlib import Path


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (from /proc/PID/task/*/children), those still alive."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        tasks = Path(f"/proc/{p}/task")
        if not tasks.exists():
            continue
        pids.append(p)
        for task in tasks.iterdir():
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:  # the task ended meanwhile
                pass
    return pids


def status_kib(pid: int | str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(pid: int) -> dict:
    """Resident memory now (VmRSS) and at its peak (VmHWM) of a process tree,
    in bytes, summed over its processes (the peak sum bounds the tree's peak)."""
    pids = process_tree(pid)
    return {
        "processes": len(pids),
        "rss_bytes": sum(status_kib(p, "VmRSS") for p in pids) * 1024,
        "peak_rss_bytes": sum(status_kib(p, "VmHWM") for p in pids) * 1024,
    }


def peak_rss(pid: int | str = "self") -> int:
    """A process's peak resident memory (VmHWM), in bytes; this one by default."""
    return status_kib(pid, "VmHWM") * 1024
