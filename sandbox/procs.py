"""Find processes that sandbox batches started and left behind, by a /proc scan (no psutil).

    from sandbox.procs import leftovers
    assert leftovers() == []        # after run_programs returned, in the same process

Every process a batch starts carries CODECOT_SANDBOX=<harness pid>.<batch> in its initial
environment (/proc/PID/environ, readable by root or the same user); programs that exec'd with a
clean environment are found by their private uid.
"""

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


def leftovers(
    uids: range | None = None, settle_s: float = 2.0, harness_pid: int | None = None
) -> list[str]:
    """Processes started by a sandbox batch of this test process that are still alive.

    A process counts if its initial environment carries CODECOT_SANDBOX=<harness pid>.<n>
    (default: this process) or it runs under one of `uids`. Zombies count as gone. Waits up to
    `settle_s` for the kernel to finish killing. Returns "pid comm uid=..." lines.
    """
    harness = os.getpid() if harness_pid is None else harness_pid
    marker = f"CODECOT_SANDBOX={harness}.".encode()
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
