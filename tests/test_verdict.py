"""sandbox/verdict.py alone: constructed run outcomes -> the exact status, detail and failed test.

    pytest -q tests/test_verdict.py      # no processes: milliseconds

Each case builds what the harness would have collected from a run's pipes (result records, the
supervisor's report of the runner's wait status, the harness's kill reason, stderr) and checks
the verdict `decide` gives; together the cases reach every status in sandbox.STATUSES and every
detail text the module can produce.
"""

from __future__ import annotations

import signal

import pytest

from sandbox import STATUSES, SandboxConfig
from sandbox._child import _record  # the runner's own encoder: the parser must read what it writes
from sandbox.verdict import NOT_RUN, Decision, RunOutcome, decide, parse_exit, parse_records

NONCE = "0123456789abcdef0123456789abcdef"
CONFIG = SandboxConfig()  # timeout_s=10, cpu limit 11 s, memory_mb=1024, output_kill_mb=16


def exited(code: int) -> str:
    """The supervisor's report (after "exit ") for a runner that exited with `code`."""
    return f"{code << 8} 0.0100 0.0020 9000"


def signaled(sig: int) -> str:
    """The supervisor's report for a runner killed by signal `sig` (no core dump)."""
    return f"{sig} 0.0100 0.0020 9000"


PASS = b"\x1ePASS\t" + NONCE.encode() + b"\n"


def outcome(
    res: bytes = b"",
    exit_report: str | None = None,
    kill_reason: str | None = None,
    stderr: bytes = b"",
    output_total: int = 0,
    nonce: str = NONCE,
) -> RunOutcome:
    return RunOutcome(nonce, res, exit_report, kill_reason, stderr, output_total)


CASES = {
    # the only way to pass: this run's nonce, then a clean exit
    "pass": (outcome(PASS, exited(0)), CONFIG, ("passed", "all tests passed", None)),
    "pass before the timer fired": (
        outcome(PASS, exited(0), kill_reason="timeout"),
        CONFIG,
        ("passed", "all tests passed", None),
    ),
    # sys.exit(0) / os._exit(0) before the tests end: a clean exit and no sentinel
    "exit 0 without sentinel": (
        outcome(b"", exited(0)),
        CONFIG,
        ("error", "exited with code 0 before the tests finished (no sentinel)", None),
    ),
    "printed fake marker": (
        outcome(b"\x1ePASS\tdeadbeef\n", exited(0)),
        CONFIG,
        ("error", "exited with code 0 before the tests finished (no sentinel)", None),
    ),
    "sentinel then bad exit": (
        outcome(PASS, exited(3)),
        CONFIG,
        ("error", "sentinel seen but the program exited with code 3", None),
    ),
    "sentinel then killed by a signal": (
        outcome(PASS, signaled(signal.SIGKILL)),
        CONFIG,
        ("killed", "killed by SIGKILL", None),
    ),
    # list tests: index and text of the failing statement
    "failed list test": (
        outcome(_record("failed", 2, "test 2: assert f(3) == 4"), exited(1)),
        CONFIG,
        ("failed", "test 2: assert f(3) == 4", 2),
    ),
    # block tests: the line, no index
    "failed block test": (
        outcome(_record("failed", None, "line 5: assert candidate(1) == 2"), exited(1)),
        CONFIG,
        ("failed", "line 5: assert candidate(1) == 2", None),
    ),
    "exception": (
        outcome(
            _record("error", None, "ZeroDivisionError: division by zero (in the solution, line 3)"),
            exited(1),
        ),  # fmt: skip
        CONFIG,
        ("error", "ZeroDivisionError: division by zero (in the solution, line 3)", None),
    ),
    "last record wins": (
        outcome(
            _record("failed", 0, "test 0: assert x") + _record("error", None, "sandbox runner: X"),
            exited(72),
        ),
        CONFIG,
        ("error", "sandbox runner: X", None),
    ),
    "MemoryError in the program": (
        outcome(_record("oom", None, "MemoryError"), exited(1)),
        CONFIG,
        ("oom", "MemoryError (address space limit: 1024 MiB above baseline)", None),
    ),
    "MemoryError, other memory limit": (
        outcome(_record("oom", None, "MemoryError"), exited(1)),
        SandboxConfig(memory_mb=256),
        ("oom", "MemoryError (address space limit: 256 MiB above baseline)", None),
    ),
    "MemoryError while compiling": (
        outcome(_record("oom", None, "MemoryError while compiling the solution"), exited(1)),
        CONFIG,
        ("oom", "MemoryError while compiling the solution", None),
    ),
    # the harness's own kills
    "wall-clock timeout": (
        outcome(b"", None, kill_reason="timeout"),
        CONFIG,
        ("timeout", "wall-clock limit of 10 s reached", None),
    ),
    "wall-clock timeout, fractional": (
        outcome(b"", signaled(signal.SIGKILL), kill_reason="timeout"),
        SandboxConfig(timeout_s=2.5),
        ("timeout", "wall-clock limit of 2.5 s reached", None),
    ),
    "batch deadline": (
        outcome(b"", None, kill_reason="deadline"),
        CONFIG,
        ("killed", "batch deadline reached while running", None),
    ),
    "output flood": (
        outcome(b"", None, kill_reason="output", output_total=16 * 1024 * 1024 + 7),
        CONFIG,
        ("killed", "output flood: more than 16 MiB (16777223 B)", None),
    ),
    # no wait status from the supervisor
    "supervisor stopped": (
        outcome(b"", "stopped", kill_reason="drain"),
        CONFIG,
        ("killed", "sandbox supervisor stopped (drain)", None),
    ),
    "supervisor lost its program": (
        outcome(b"", "lost"),
        CONFIG,
        ("killed", "sandbox supervisor lost its program", None),
    ),
    "supervisor died": (outcome(b"", None), CONFIG, ("killed", "sandbox supervisor died", None)),
    # the runner died of a signal
    "RLIMIT_CPU": (
        outcome(b"", signaled(signal.SIGXCPU)),
        CONFIG,
        ("timeout", "CPU limit of 11 s reached (SIGXCPU)", None),
    ),
    "RLIMIT_CPU, explicit": (
        outcome(b"", signaled(signal.SIGXCPU)),
        SandboxConfig(cpu_s=3),
        ("timeout", "CPU limit of 3 s reached (SIGXCPU)", None),
    ),
    "signal after MemoryError": (
        outcome(b"", signaled(signal.SIGABRT), stderr=b"Traceback ...\nMemoryError\n"),
        CONFIG,
        ("oom", "killed by SIGABRT out of memory", None),
    ),
    "signal after ENOMEM": (
        outcome(b"", signaled(signal.SIGSEGV), stderr=b"mmap: Cannot allocate memory"),
        CONFIG,
        ("oom", "killed by SIGSEGV out of memory", None),
    ),
    "signal after bad_alloc": (
        outcome(b"", signaled(signal.SIGABRT), stderr=b"std::bad_alloc"),
        CONFIG,
        ("oom", "killed by SIGABRT out of memory", None),
    ),
    # only the last 4000 kept bytes of stderr are searched
    "MemoryError too far back": (
        outcome(b"", signaled(signal.SIGABRT), stderr=b"MemoryError" + b"x" * 4000),
        CONFIG,
        ("killed", "killed by SIGABRT", None),
    ),
    "killed by a signal": (
        outcome(b"", signaled(signal.SIGSEGV)),
        CONFIG,
        ("killed", "killed by SIGSEGV", None),
    ),
    "unknown signal number": (outcome(b"", signaled(72)), CONFIG, ("killed", "killed by 72", None)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_decide(name: str) -> None:
    run, config, expected = CASES[name]
    decision = decide(run, config)
    assert decision == Decision(*expected)
    assert decision.passed == (expected[0] == "passed")


def test_cases_reach_every_status() -> None:
    assert {expected[0] for _, _, expected in CASES.values()} == set(STATUSES)


def test_not_run() -> None:
    assert NOT_RUN == Decision("killed", "not run: batch deadline reached", None)
    assert not NOT_RUN.passed


def test_records_round_trip_the_runners_escapes() -> None:
    detail = "line 1\nline 2\tcol \\ back \\n literal"
    records = parse_records(b"noise" + _record("failed", 4, detail) + _record("oom", None, "M"))
    assert records == [("failed", "4", detail), ("oom", "", "M")]


def test_records_tolerate_garbage() -> None:
    data = b"\x1enotabs\n\x1ePASS\tabc\n\x1eerror\t\tx\ty\ntrailing\x1e"
    assert parse_records(data) == [("PASS", "abc", ""), ("error", "", "x\ty")]


def test_parse_exit() -> None:
    assert parse_exit("256 0.0100 0.0020 9000") == 256
    assert parse_exit("stopped") is None
    assert parse_exit("lost") is None
    assert parse_exit("") is None
    assert parse_exit(None) is None
