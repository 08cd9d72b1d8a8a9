"""What the sandbox tests look for after a run: processes of the runs this test process started.

Other scorers may run on the same machine (a parallel sweep, a second checkout's tests, a
training run's pool), so the probe never looks at the whole machine: only at this process's
descendants. Importing it makes this process a child subreaper (PR_SET_CHILD_SUBREAPER, Linux
3.4+), so a process of ours that left its run (double fork, setsid) is re-parented here instead
of to init, and stays a descendant.
"""

import ctypes
import os
import re
from pathlib import Path

from tasks.sandbox import RUN_ENV, UID_BASE, UID_SPAN

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def sandbox_processes() -> list[str]:
    """'pid state uid' of each descendant of this process that belongs to a sandbox run (a sandbox
    uid, or a run's variable in its environment), zombies included. A zombie child is reaped once
    reported, so one leak fails one test, not every later one."""
    parents, found = {}, []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        parents[int(pid)] = int(stat.rsplit(")", 1)[1].split()[1])  # comm may hold spaces and parentheses
    ours, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - ours
        ours |= frontier
    for pid in sorted(ours):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
        state = re.search(r"^State:\s+(\S+)", status, re.M).group(1)
        if UID_BASE <= uid < UID_BASE + UID_SPAN or f"{RUN_ENV}=".encode() in environ:
            found.append(f"{pid} {state} {uid}")
            if state == "Z" and parents[pid] == os.getpid():
                os.waitpid(pid, os.WNOHANG)
    return found
