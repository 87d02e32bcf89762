"""Helpers for the sandbox tests: find processes a batch left behind, by a /proc scan."""

from __future__ import annotations

import os
import time


def _environ(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _uid(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def leftovers(uids: range | None = None, settle_s: float = 2.0) -> list[str]:
    """Processes started by a sandbox batch of this test process that are still alive.

    A process belongs to us if its initial environment carries CODECOT_SANDBOX=<our pid>.<n>,
    or (for programs that exec'd with a clean environment) it runs under one of `uids`.
    Zombies count as gone. Waits up to `settle_s` for the kernel to finish killing.
    """
    marker = f"CODECOT_SANDBOX={os.getpid()}.".encode()
    found: list[str] = []
    end = time.monotonic() + settle_s
    while True:
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            state = stat[stat.rfind(b")") + 2 :].split()[0]
            if state in (b"Z", b"X"):
                continue
            ours = marker in _environ(pid)
            if not ours and uids is not None:
                ours = _uid(pid) in uids
            if ours:
                comm = stat[stat.find(b"(") + 1 : stat.rfind(b")")].decode(errors="replace")
                found.append(f"{pid} {comm} uid={_uid(pid)}")
        if not found or time.monotonic() > end:
            return found
        time.sleep(0.1)
