"""Where a sandbox verdict is decided: what one run produced -> passed / failed / error / ...

    from sandbox import SandboxConfig
    from sandbox.verdict import RunOutcome, decide
    run = RunOutcome(nonce="5e1f", res=b"\\x1ePASS\\t5e1f\\n", exit_report="0 0.01 0.00 9000",
                     kill_reason=None, stderr=b"", output_total=12)
    decide(run, SandboxConfig())   # Decision("passed", "all tests passed", None)

Pure: no processes, no I/O, no clock. `sandbox/pool.py` collects a `RunOutcome` per program from
its pipes (the runner's result records, the supervisor's report of the runner's wait status, the
harness's own reason for killing it) and calls `decide`; `tests/test_verdict.py` calls it with
constructed outcomes. The rules, in order:

1. passed: the result pipe carries a PASS record with this run's nonce AND the runner exited with
   code 0. Nothing else passes (an exit code alone, sys.exit(0), a printed fake marker).
2. the harness killed it: timeout (wall clock), killed (batch deadline, output flood).
3. no wait status from the supervisor: killed (it was stopped, lost its program, or died).
4. the runner died of a signal: timeout (SIGXCPU: RLIMIT_CPU), oom (MemoryError and the like
   in the stderr tail), else killed.
5. it exited: the last failed / error / oom record it wrote, else error (exit code, sentinel or
   not).

A NativeProgram's run (`NativeOutcome`, `decide_native`) is judged by exit status instead: there
is no sentinel in a C++ program; the rules are in `decide_native`'s docstring.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import NamedTuple

from sandbox.api import SandboxConfig

REC = b"\x1e"  # starts every record on the result pipe (written by sandbox/_child.py)
SIGNAMES = {s.value: s.name for s in signal.Signals}
STDERR_TAIL = 4000  # bytes of kept stderr searched for signs of running out of memory
OOM_MARKS = (b"MemoryError", b"Cannot allocate memory", b"bad_alloc")


@dataclass(frozen=True)
class RunOutcome:
    """What the harness saw of one program's run: the inputs of its verdict."""

    nonce: str  # this run's secret; the runner's PASS record must carry it
    res: bytes  # the result pipe's kept tail: records REC status TAB index TAB detail NEWLINE
    exit_report: str | None  # the supervisor's "exit ..." line without "exit ", None if none came
    kill_reason: str | None  # why the harness killed it: "timeout" | "output" | "deadline" | ...
    stderr: bytes  # the stderr bytes kept (the first SandboxConfig.output_bytes)
    output_total: int  # bytes written on stdout, stderr and the result pipe, all counted


class Decision(NamedTuple):
    """A verdict's judgement: status (one of sandbox.STATUSES), detail, failed test index."""

    status: str
    detail: str
    failed_test: int | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"


# a program the batch deadline left unstarted
NOT_RUN = Decision("killed", "not run: batch deadline reached")


def decide(run: RunOutcome, config: SandboxConfig) -> Decision:
    """The verdict of one run (the rules are in this module's docstring)."""
    records = parse_records(run.res)
    wait_status = parse_exit(run.exit_report)
    sentinel = ("PASS", run.nonce) in ((r[0], r[1]) for r in records)
    if sentinel and wait_status is not None and os.WIFEXITED(wait_status):
        if os.WEXITSTATUS(wait_status) == 0:
            return Decision("passed", "all tests passed")
    reason = run.kill_reason
    if reason == "timeout":
        return Decision("timeout", f"wall-clock limit of {config.timeout_s:g} s reached")
    if reason == "deadline":
        return Decision("killed", "batch deadline reached while running")
    if reason == "output":
        return Decision(
            "killed",
            f"output flood: more than {config.output_kill_mb} MiB ({run.output_total} B)",
        )
    if wait_status is None:
        return supervisor_gone(run.exit_report, reason, "")
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        name = SIGNAMES.get(sig, str(sig))
        if sig == signal.SIGXCPU:
            return Decision("timeout", f"CPU limit of {config.cpu_limit_s} s reached ({name})")
        tail = run.stderr[-STDERR_TAIL:]
        if any(mark in tail for mark in OOM_MARKS):
            return Decision("oom", f"killed by {name} out of memory")
        return Decision("killed", f"killed by {name}")
    code = os.WEXITSTATUS(wait_status)
    for status, index, detail in reversed(records):
        if status in ("failed", "error", "oom"):
            fail_index = int(index) if index.isdigit() else None
            if status == "oom" and detail == "MemoryError":
                detail = f"MemoryError (address space limit: {config.memory_mb} MiB above baseline)"
            return Decision(status, detail, fail_index)
    if sentinel:
        return Decision("error", f"sentinel seen but the program exited with code {code}")
    return Decision("error", f"exited with code {code} before the tests finished (no sentinel)")


@dataclass(frozen=True)
class NativeOutcome:
    """What the harness saw of one NativeProgram's run: the inputs of its verdict."""

    has_build: bool  # the program has a build step
    build_report: str | None  # the supervisor's "built ..." line without "built ", None if none
    exit_report: str | None  # the run step's "exit ..." report, None if none came
    kill_reason: str | None  # why the harness killed it (as RunOutcome.kill_reason)
    phase: str  # the step running when the harness killed it or the run ended: "build" | "run"
    stderr: bytes  # the run step's stderr bytes kept
    output_total: int  # bytes written on stdout, stderr and the build log, all counted


FAILED_TAIL = 1000  # characters of the run step's stderr in a "failed" detail


def decide_native(run: NativeOutcome, config: SandboxConfig) -> Decision:
    """The verdict of one NativeProgram run, by exit status as MultiPL-E judges (its OK /
    SyntaxError / Exception / Timeout map to passed / error / failed / timeout):

    1. the harness killed it: timeout (wall clock, detail names the step), killed (batch
       deadline, output flood);
    2. the build step did not exit 0: timeout (SIGXCPU: its CPU limit), else error, detail
       "build failed (exit N)" or "build failed (killed by SIGNAME)"; the run never started;
    3. no wait status of the run step: killed (the supervisor died or lost it);
    4. the run step died of a signal: timeout (SIGXCPU), failed (SIGABRT: a failed C/C++
       assert() aborts), else killed naming the signal;
    5. it exited: 0 passed, N failed with "exit N: <stderr tail>".
    """
    step = "build step" if run.phase == "build" else "run step"
    reason = run.kill_reason
    if reason == "timeout":
        limit = config.build_timeout_s if run.phase == "build" else config.timeout_s
        return Decision("timeout", f"{step}: wall-clock limit of {limit:g} s reached")
    if reason == "deadline":
        return Decision("killed", f"batch deadline reached while in the {step}")
    if reason == "output":
        return Decision(
            "killed",
            f"output flood in the {step}: more than {config.output_kill_mb} MiB "
            f"({run.output_total} B)",
        )
    if run.has_build:
        built = parse_exit(run.build_report)
        if built is None:
            return supervisor_gone(None, reason, " in the build step")
        if os.WIFSIGNALED(built):
            sig = os.WTERMSIG(built)
            if sig == signal.SIGXCPU:
                return Decision("timeout", f"build step: CPU limit of "
                                           f"{config.build_cpu_limit_s} s reached (SIGXCPU)")  # fmt: skip
            return Decision("error", f"build failed (killed by {SIGNAMES.get(sig, str(sig))})")
        if os.WEXITSTATUS(built) != 0:
            return Decision("error", f"build failed (exit {os.WEXITSTATUS(built)})")
    wait_status = parse_exit(run.exit_report)
    if wait_status is None:
        return supervisor_gone(run.exit_report, reason, " in the run step")
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        name = SIGNAMES.get(sig, str(sig))
        if sig == signal.SIGXCPU:
            return Decision("timeout", f"run step: CPU limit of {config.cpu_limit_s} s reached")
        if sig == signal.SIGABRT:  # a failed C/C++ assert(): MultiPL-E's "Exception" too
            tail = run.stderr.decode("utf-8", "replace").strip()[-FAILED_TAIL:]
            return Decision("failed", f"abort (SIGABRT): {tail}")
        tail = run.stderr[-STDERR_TAIL:]
        why = " (out of memory)" if any(mark in tail for mark in OOM_MARKS) else ""
        return Decision("killed", f"run step killed by {name}{why}")
    code = os.WEXITSTATUS(wait_status)
    if code == 0:
        return Decision("passed", "exit 0")
    tail = run.stderr.decode("utf-8", "replace").strip()[-FAILED_TAIL:]
    return Decision("failed", f"exit {code}: {tail}")


def supervisor_gone(report: str | None, reason: str | None, where: str) -> Decision:
    """ "killed": no wait status came (the supervisor was stopped, lost its program or died)."""
    why = {"stopped": "stopped", "lost": "lost its program"}.get(report or "", "died")
    extra = f" ({reason})" if reason else ""
    return Decision("killed", f"sandbox supervisor {why}{where}{extra}")


def exit_code(report: str | None) -> int | None:
    """The exit code in a supervisor's exit report; None if the process did not exit normally."""
    status = parse_exit(report)
    return os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else None


def parse_records(data: bytes) -> list[tuple[str, str, str]]:
    """Parse the result pipe: REC status TAB index TAB detail NEWLINE (anything else ignored)."""
    out = []
    for chunk in data.split(REC)[1:]:
        line = chunk.split(b"\n", 1)[0].decode("utf-8", "replace")
        parts = line.split("\t", 2)
        if len(parts) == 2:
            parts.append("")
        if len(parts) != 3:
            continue
        detail = parts[2]
        if "\\" in detail:
            detail = (
                detail.replace("\\\\", "\x00").replace("\\n", "\n").replace("\\t", "\t")
            ).replace("\x00", "\\")
        out.append((parts[0], parts[1], detail))
    return out


def parse_exit(report: str | None) -> int | None:
    """The supervisor's `exit STATUS UTIME STIME MAXRSS` report -> the runner's wait status."""
    word = report.split()[0] if report else ""
    return int(word) if word.isdigit() else None
