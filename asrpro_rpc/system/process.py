"""Process-wide guards and defaults: the fd 1 guard every process of ours takes first, CPU threads."""

from __future__ import annotations

import os
import sys


def guard_stdout() -> int:
    """Reserve the real stdout for the protocol; return its private fd. fd 1 then points at stderr."""
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if hasattr(os, "set_inheritable"):
        os.set_inheritable(protocol_fd, False)
    return protocol_fd


def default_cpu_threads(workers: int = 1) -> int:
    """The cores this process may use, shared by ``workers`` transcriptions that may run at once (at least
    one each): they never oversubscribe the cores, as CTranslate2's guide for parallel workers asks."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, workers))
