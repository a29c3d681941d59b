"""The processes of this machine as /proc shows them, for tests that check what a run leaves
running (independent of mer's own watchdog, so the check does not trust the code it checks)."""

from __future__ import annotations

import os
from pathlib import Path


def process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time in clock ticks) of every live process; {} without /proc."""
    table: dict[int, tuple[int, int]] = {}
    if not os.path.isdir("/proc"):
        return table
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            table[int(name)] = (int(fields[1]), int(fields[19]))
    return table


def descendants(pid: int, table: dict[int, tuple[int, int]] | None = None) -> dict[int, int]:
    """Every live descendant of `pid`: {pid: start time}."""
    table = process_table() if table is None else table
    found: dict[int, int] = {}
    parents = {pid}
    while parents:
        children = {p: s for p, (pp, s) in table.items() if pp in parents and p not in found}
        found.update(children)
        parents = set(children)
    return found
