"""Instruction counts of sandboxed programs, and EvalPerf's DPS / DPS_norm.

    from evaluation.perf import ProfileJob, profile, resolve_counter, score_sample
    counter = resolve_counter("auto")             # "hw" where perf_event_open works, else "valgrind"
    jobs = [ProfileJob("s0", code, entry_point="f", args=[10_000])]       # cost of f(10_000)
    jobs += [ProfileJob("s1", code, tests="assert f(3) == 9\\n")]        # cost of running the tests
    results = profile(jobs, counter, workers=2)   # results[0].instructions: int, or None + detail
    score_sample(1_200, ref_costs=[5_000, 2_000, 1_000], scores=[10.0, 50.0, 90.0])
    # SampleScore(dps=10.0, dps_norm=33.33..., matching_cluster=0)

What is counted. Every profiled program is a small driver run with `python -S -B -s` inside the
sandbox (a `sandbox.NativeProgram`: own namespaces, private uid and /tmp, no network, nothing left
running). The driver executes the program's code in a fresh namespace (not counted, as evalplus
`exec`s the solution before profiling), then makes the measured call through
`sys.call_tracing(fn, args)`: the entry point on its input, or `exec` of the test block. Only
that call is counted:

    hw        a perf_event_open counter (PERF_COUNT_HW_INSTRUCTIONS, user space only) opened in
              the driver, reset and enabled right before the call and read right after it, as
              evalplus does with Cirron. Where it works (bare-metal Linux, perf_event_paranoid
              <= 2); a VM without a PMU refuses it (ENOENT).
    valgrind  Valgrind's callgrind with `--collect-atstart=no --toggle-collect=_PyEval_CallTracing`:
              it counts the guest instructions executed inside the one C function that
              `sys.call_tracing` enters, i.e. the call and nothing else (no interpreter start-up,
              no imports, no exit). The driver removes `sys.call_tracing` before the sample runs,
              so the sample cannot toggle collection itself, and points its own stdout/stderr at
              /dev/null, so nothing it prints can look like callgrind's "Collected :" line
              (Valgrind writes its log through a descriptor the client cannot touch).
              Deterministic: the same program gives the same count on every run; what would vary
              is pinned (PYTHONHASHSEED=0 in the driver's environment; hence `-S -B -s` and not
              `-I`, which ignores PYTHONHASHSEED: the sandbox's environment carries no other
              PYTHON* variable). Tens of times slower than the program itself.

Counts of different counters are different quantities (hardware counts vary a little from run to
run and include what the CPU retires for the interpreter; callgrind counts guest instructions
exactly): a run records its counter, and nothing compares counts made with different counters
(`check_same_counter`).

DPS (evalplus/evalperf.py, `perf_worker`): the references of a task come ordered slowest to
fastest with `scores` (reference j's score: how many of the LLM solutions EvalPerf collected it
beats, in %). A sample's cost is compared with the references from the fastest down; at the
first (fastest) reference j it is no costlier than, DPS = scores[j] and DPS_norm = 100 * (j + 1) /
n_references; a sample costlier than every reference, or one whose profiling failed, scores 0 and
0 (matching cluster -1). A task is scored only when at least `min_correct` of its samples pass
(evalplus's default 10), and then its first `max_profile` passing samples are profiled (default
min(2 * min_correct, samples of the task)); the task's DPS is the mean over its profiled samples,
and the run's DPS the mean over scored tasks (`score_task`, `mean_scores`).
"""

from __future__ import annotations

import marshal
import os
import platform
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plumbing import InputError

if TYPE_CHECKING:
    from sandbox import NativeProgram, SandboxConfig

COUNTERS = ("auto", "hw", "valgrind")
# evalplus.config: PERF_EVAL_TIMEOUT_SECOND and PERF_RAM_GB_PER_PROC
PERF_TIMEOUT_S = 45.0
PERF_MEMORY_MB = 12 * 1024
# Valgrind's JIT runs Python tens of times slower than the CPU does, so the wall clock of a
# valgrind profile is the hw one times this.
VALGRIND_SLOWDOWN = 50
TOGGLE_FUNCTION = "_PyEval_CallTracing"  # the C function sys.call_tracing enters
HW_MARKER = "@@codecot-instructions@@"
EXIT_SETUP_FAILED, EXIT_CALL_FAILED, EXIT_NO_COUNTER = 3, 4, 5
_COLLECTED_RE = re.compile(r"^==\d+== Collected : (\d+)\s*$", re.MULTILINE)
_SYSCALL_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "ppc64le": 319, "s390x": 331}

# perf_event_open(2) for this thread's user-space instructions, disabled until enabled. Shared by
# the harness's probe (`hw_counter_problem`) and the driver (it is part of DRIVER's text).
PERF_FD_SOURCE = r"""
def _perf_instructions_fd(syscall_nr):
    import ctypes, os, struct
    libc = ctypes.CDLL(None, use_errno=True)
    attr = ctypes.create_string_buffer(64)  # struct perf_event_attr, PERF_ATTR_SIZE_VER0
    # type PERF_TYPE_HARDWARE (0), size, config PERF_COUNT_HW_INSTRUCTIONS (1)
    struct.pack_into("IIQ", attr, 0, 0, 64, 1)
    # flags: disabled (bit 0), exclude_kernel (bit 5), exclude_hv (bit 6)
    struct.pack_into("Q", attr, 40, 1 | 1 << 5 | 1 << 6)
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(ctypes.c_long(syscall_nr), attr, 0, -1, -1, ctypes.c_ulong(0))
    if fd < 0:
        err = ctypes.get_errno()
        return None, f"perf_event_open: {os.strerror(err)} (errno {err})"
    return (libc, fd), ""
"""

# The program each profile runs. Constants are appended below it: SETUP (the program text),
# ENTRY (None: exec TESTS instead), ARGS (marshal of the argument list), TESTS, COUNTER, PATHS.
DRIVER = (
    PERF_FD_SOURCE
    + r"""
def _driver():
    import marshal, os, sys

    call_tracing = sys.call_tracing
    del sys.call_tracing  # only the driver may enter the counted function
    sys.path[:0] = PATHS
    out = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the sample's output goes nowhere (evalplus swallows it too)
        os.dup2(null, fd)
    namespace = {}
    try:
        exec(compile(SETUP, "<program>", "exec"), namespace)
        if ENTRY is None:
            fn, args = exec, (compile(TESTS, "<tests>", "exec"), namespace)
        else:
            fn, args = namespace[ENTRY], tuple(marshal.loads(ARGS))
    except BaseException:
        os._exit(3)
    counter = None
    if COUNTER == "hw":
        counter, why = _perf_instructions_fd(SYSCALL_NR)
        if counter is None:
            os.write(out, why.encode() + b"\n")
            os._exit(5)
        libc, fd = counter
        libc.ioctl(fd, 0x2403, 0)  # PERF_EVENT_IOC_RESET
        libc.ioctl(fd, 0x2400, 0)  # PERF_EVENT_IOC_ENABLE
    try:
        call_tracing(fn, args)
    except BaseException:
        os._exit(4)
    if counter is not None:
        libc.ioctl(fd, 0x2401, 0)  # PERF_EVENT_IOC_DISABLE
        count = int.from_bytes(os.read(fd, 8), "little")
        os.write(out, (MARKER + str(count) + "\n").encode())
    os._exit(0)
"""
)


@dataclass(frozen=True)
class ProfileJob:
    """One program to profile: `code` is executed first (not counted), then either
    `entry_point(*args)` or the `tests` block in the code's namespace is counted."""

    id: str
    code: str
    entry_point: str | None = None
    args: Sequence[Any] = ()
    tests: str | None = None


@dataclass(frozen=True)
class ProfileResult:
    id: str
    instructions: int | None  # None: the profile failed (detail says why)
    status: str  # the sandbox's verdict status of the profiled run
    detail: str


@dataclass(frozen=True)
class SampleScore:
    dps: float
    dps_norm: float
    matching_cluster: int  # the reference matched; -1: costlier than all, or profile failed


@dataclass(frozen=True)
class TaskScore:
    dps: float | None  # None: not scored (fewer than min_correct passing samples)
    dps_norm: float | None
    profiled: list[int]  # indices of the samples profiled
    samples: dict[int, SampleScore]  # per profiled sample


# ---------------------------------------------------------------------------------------------
# which counter


def _syscall_nr() -> int | None:
    return _SYSCALL_PERF_EVENT_OPEN.get(platform.machine())


def hw_counter_problem() -> str | None:
    """Why a hardware instruction counter cannot be opened here (None: it can)."""
    if sys.platform != "linux":
        return f"perf_event_open is Linux-only (this is {sys.platform})"
    nr = _syscall_nr()
    if nr is None:
        return f"no perf_event_open syscall number known for {platform.machine()}"
    scope: dict[str, Any] = {}
    exec(PERF_FD_SOURCE, scope)
    counter, why = scope["_perf_instructions_fd"](nr)
    if counter is None:
        return why
    os.close(counter[1])
    return None


def sandbox_hw_problem(config: SandboxConfig | None = None) -> str | None:
    """Why a sandboxed program cannot count instructions although this process can (e.g.
    perf_event_paranoid 3 lets root count but not the sandbox's private uid); None: it can."""
    probe = ProfileJob("hw-probe", "def probe():\n    return 1\n", "probe")
    (result,) = profile([probe], "hw", config, workers=1, timeout_s=30.0)
    return None if result.instructions is not None else result.detail


def resolve_counter(requested: str, config: SandboxConfig | None = None) -> str:
    """The counter for --perf-counter auto|hw|valgrind: "hw" or "valgrind"; InputError when it
    cannot work. hw needs a counter both here and in the sandbox (a probe program runs there)."""
    if requested not in COUNTERS:
        raise InputError(f"--perf-counter {requested!r}: choose from {', '.join(COUNTERS)}")
    hw_problem = hw_counter_problem() if requested in ("auto", "hw") else None
    if requested in ("auto", "hw") and hw_problem is None:
        hw_problem = sandbox_hw_problem(config)
    if requested == "hw":
        if hw_problem:
            raise InputError(
                f"--perf-counter hw: no hardware instruction counter here ({hw_problem}); use "
                "--perf-counter valgrind (or auto)"
            )
        return "hw"
    if requested == "auto" and hw_problem is None:
        return "hw"
    if shutil.which("valgrind") is None:
        why = f" (no hardware counter: {hw_problem})" if hw_problem else ""
        raise InputError(
            f"--perf-counter {requested}: valgrind is not installed{why}; install the Debian "
            "package `valgrind` (apt-get install -y valgrind)"
        )
    return "valgrind"


def check_same_counter(counters: Sequence[str | None], what: str) -> str:
    """The one counter of `counters`; InputError when counts of different counters would be
    compared (they measure different things)."""
    found = sorted({c for c in counters if c})
    if len(found) != 1:
        raise InputError(
            f"{what}: instruction counts made with different counters ({', '.join(found)}) "
            "cannot be compared; profile every run with the same --perf-counter"
            if found
            else f"{what}: no instruction counter recorded"
        )
    return found[0]


# ---------------------------------------------------------------------------------------------
# running profiles


def _python(config: SandboxConfig) -> str:
    return config.python or sys.executable


def driver_text(job: ProfileJob, counter: str, site_paths: Sequence[str] = ()) -> str:
    """The driver program of one profile (see the module docstring)."""
    if (job.entry_point is None) == (job.tests is None):
        raise ValueError(f"profile {job.id!r}: give exactly one of entry_point and tests")
    constants = {
        "SETUP": job.code,
        "ENTRY": job.entry_point,
        "ARGS": marshal.dumps(list(job.args)),
        "TESTS": job.tests,
        "COUNTER": counter,
        "PATHS": list(site_paths),
        "SYSCALL_NR": _syscall_nr(),
        "MARKER": HW_MARKER,
    }
    return DRIVER + "".join(f"{k} = {v!r}\n" for k, v in constants.items()) + "_driver()\n"


def native_profile(
    job: ProfileJob,
    counter: str,
    config: SandboxConfig,
    timeout_s: float | None = None,
    memory_mb: int = PERF_MEMORY_MB,
) -> NativeProgram:
    """The sandboxed program that profiles `job` with `counter` ("hw" or "valgrind")."""
    import site

    from sandbox import NativeProgram

    if counter not in ("hw", "valgrind"):
        raise ValueError(f"counter {counter!r}: resolve it first (resolve_counter)")
    python = _python(config)
    site_paths = site.getsitepackages() if config.site_packages else []
    argv: tuple[str, ...] = (python, "-S", "-B", "-s", "prog.py")
    if counter == "valgrind":
        argv = (
            "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", "--vgdb=no",
            "--collect-atstart=no", f"--toggle-collect={TOGGLE_FUNCTION}", *argv,
        )  # fmt: skip
    if timeout_s is None:
        timeout_s = PERF_TIMEOUT_S * (VALGRIND_SLOWDOWN if counter == "valgrind" else 1)
    prefix = os.path.realpath(sys.base_prefix)  # the interpreter's stdlib and libpython
    return NativeProgram(
        id=job.id,
        files=(("prog.py", driver_text(job, counter, site_paths)),),
        run=argv,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        env=(("PYTHONHASHSEED", "0"),),
        readable=(prefix, os.path.dirname(os.path.realpath(python))),
    )


def read_count(counter: str, status: str, exit_code: int | None, stdout: str, stderr: str) -> (
    tuple[int | None, str]
):  # fmt: skip
    """(instructions, problem) from what a profile run printed."""
    if exit_code == EXIT_SETUP_FAILED:
        return None, "the program raised before the profiled call"
    if exit_code == EXIT_CALL_FAILED:
        return None, "the profiled call raised"
    if exit_code == EXIT_NO_COUNTER:
        return None, f"no hardware counter in the sandbox: {stdout.strip()[-300:]}"
    if status != "passed":
        return None, f"{status} (exit {exit_code}): {stderr.strip()[-300:]}"
    if counter == "hw":
        found = [line for line in stdout.splitlines() if line.startswith(HW_MARKER)]
        if not found:
            return None, "the driver printed no count"
        return int(found[-1][len(HW_MARKER) :]), ""
    collected = _COLLECTED_RE.findall(stderr)
    if not collected:
        return None, f"callgrind printed no count: {stderr.strip()[-300:]}"
    if int(collected[-1]) == 0:  # the call itself costs instructions: the toggle never fired
        return None, (
            f"callgrind collected nothing: the interpreter has no symbol {TOGGLE_FUNCTION} "
            "(stripped); use an interpreter with its symbols, or --perf-counter hw"
        )
    return int(collected[-1]), ""


def profile(
    jobs: Sequence[ProfileJob],
    counter: str,
    config: SandboxConfig | None = None,
    *,
    workers: int | None = None,
    timeout_s: float | None = None,
    memory_mb: int = PERF_MEMORY_MB,
    progress: bool = False,
) -> list[ProfileResult]:
    """Instruction counts of `jobs` (in order), all in one sandbox batch. Identical jobs
    (same code and call) are run once: the counters measure the program, not the moment."""
    from sandbox import SandboxConfig, run_programs

    config = config if config is not None else SandboxConfig()
    unique: dict[tuple[Any, ...], int] = {}
    programs = []
    for job in jobs:
        key = (job.code, job.entry_point, marshal.dumps(list(job.args)), job.tests)
        if key not in unique:
            unique[key] = len(programs)
            programs.append(native_profile(job, counter, config, timeout_s, memory_mb))
    verdicts = run_programs(programs, config, workers=workers, progress=progress)
    results = []
    for job in jobs:
        key = (job.code, job.entry_point, marshal.dumps(list(job.args)), job.tests)
        v = verdicts[unique[key]]
        count, problem = read_count(counter, v.status, v.exit_code, v.stdout, v.stderr)
        results.append(ProfileResult(job.id, count, v.status, problem or "profiled"))
    return results


# ---------------------------------------------------------------------------------------------
# DPS and DPS_norm (evalplus/evalperf.py)


def score_sample(
    cost: float | None, ref_costs: Sequence[float], scores: Sequence[float]
) -> SampleScore:
    """A profiled sample's DPS and DPS_norm against references ordered slowest to fastest."""
    if len(ref_costs) != len(scores) or not scores:
        raise ValueError("need one score per reference, and at least one reference")
    n = len(ref_costs)
    if cost is not None:
        for j in range(n - 1, -1, -1):  # from the fastest reference to the slowest
            if cost <= ref_costs[j]:
                return SampleScore(float(scores[j]), 100.0 * (j + 1) / n, j)
    return SampleScore(0.0, 0.0, -1)


def samples_to_profile(
    passed: Sequence[bool], min_correct: int, max_profile: int | None = None
) -> list[int]:
    """Indices of the samples evalplus profiles: the first `max_profile` passing ones (default
    min(2 * min_correct, len(passed))), or none when fewer than `min_correct` pass."""
    passing = [i for i, ok in enumerate(passed) if ok]
    if len(passing) < min_correct or not passing:
        return []
    limit = max_profile if max_profile is not None else min(2 * min_correct, len(passed))
    return passing[:limit]


def score_task(
    passed: Sequence[bool],
    costs: dict[int, float | None],
    ref_costs: Sequence[float],
    scores: Sequence[float],
    min_correct: int,
    max_profile: int | None = None,
) -> TaskScore:
    """A task's DPS and DPS_norm: the mean over its profiled samples (`costs`: sample index ->
    instruction count, None where profiling failed; indices from `samples_to_profile`)."""
    chosen = samples_to_profile(passed, min_correct, max_profile)
    if not chosen:
        return TaskScore(None, None, [], {})
    per = {i: score_sample(costs.get(i), ref_costs, scores) for i in chosen}
    dps = sum(s.dps for s in per.values()) / len(per)
    dps_norm = sum(s.dps_norm for s in per.values()) / len(per)
    return TaskScore(dps, dps_norm, chosen, per)


def mean_scores(tasks: Sequence[TaskScore]) -> tuple[float | None, float | None, int]:
    """(DPS, DPS_norm, tasks scored): the means over the tasks that were scored."""
    done = [t for t in tasks if t.dps is not None]
    if not done:
        return None, None, 0
    dps = sum(t.dps for t in done if t.dps is not None) / len(done)
    norm = sum(t.dps_norm for t in done if t.dps_norm is not None) / len(done)
    return dps, norm, len(done)


# ---------------------------------------------------------------------------------------------
# `diag eval`: columns of the samples table, and the summary


# Columns `diag eval` adds to samples.parquet when it profiles (evalperf, or --profile).
PERF_COLUMNS = ("instructions", "perf_counter", "dps", "dps_norm", "matching_cluster")


def _tests_text(tests: list[str] | str) -> str:
    return tests if isinstance(tests, str) else "\n".join(tests) + "\n"


def profile_rows(
    rows: list[dict[str, Any]],
    tasks: Sequence[Any],
    counter: str,
    *,
    min_correct: int = 10,
    max_profile: int | None = None,
    ref_costs: dict[str, list[int | None]] | None = None,
    config: SandboxConfig | None = None,
    workers: int | None = None,
    timeout_s: float | None = None,
    progress: bool = False,
) -> dict[str, list[int | None]]:
    """Fill PERF_COLUMNS of `diag eval`'s sample rows (task_id, sample, passed, code) in place.

    EvalPerf tasks (`bench_evalperf.EvalPerfTask`): the samples `samples_to_profile` picks are
    profiled on pe_input, their references too (unless in `ref_costs`, which is filled: the
    references of a task are profiled once per run), and scored. Other tasks (--profile): every
    passing sample's tests are profiled (stdin-only tasks have none: left empty). Returns the
    references' counts, task_id -> counts (None where a reference failed to profile; its task
    is then not scored)."""
    from evaluation.bench_evalperf import EvalPerfTask

    ref_costs = ref_costs if ref_costs is not None else {}
    by_task: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        row.update(dict.fromkeys(PERF_COLUMNS), perf_counter=counter)
        by_task.setdefault(row["task_id"], []).append(row)
    jobs: list[ProfileJob] = []
    chosen: dict[str, list[int]] = {}
    for task in tasks:
        task_rows = sorted(by_task.get(task.task_id, []), key=lambda r: r["sample"])
        by_task[task.task_id] = task_rows
        passed = [bool(r["passed"]) for r in task_rows]
        if isinstance(task, EvalPerfTask):
            picks = samples_to_profile(passed, min_correct, max_profile)
            chosen[task.task_id] = picks
            for i in picks:
                jobs.append(ProfileJob(f"{task.task_id}#{i}", task_rows[i]["code"],
                                       task.entry_point, task.pe_args))  # fmt: skip
            if picks and task.task_id not in ref_costs:
                for j, ref in enumerate(task.reference):
                    jobs.append(ProfileJob(f"ref:{task.task_id}#{j}", ref, task.entry_point,
                                           task.pe_args))  # fmt: skip
        elif task.tests:
            tests = _tests_text(task.tests)
            for i in (i for i, ok in enumerate(passed) if ok):
                jobs.append(ProfileJob(f"{task.task_id}#{i}", task_rows[i]["code"], tests=tests))
    results = {
        r.id: r
        for r in profile(
            jobs, counter, config, workers=workers, timeout_s=timeout_s, progress=progress
        )  # fmt: skip
    }
    for task in tasks:
        task_rows = by_task.get(task.task_id, [])
        for i, row in enumerate(task_rows):
            found = results.get(f"{task.task_id}#{i}")
            row["instructions"] = found.instructions if found else None
        picks = chosen.get(task.task_id)
        if not picks:
            continue
        if task.task_id not in ref_costs:
            refs = [results[f"ref:{task.task_id}#{j}"] for j in range(len(task.reference))]
            ref_costs[task.task_id] = [r.instructions for r in refs]
        costs = ref_costs[task.task_id]
        if any(c is None for c in costs):
            continue  # a reference that cannot be profiled: the task cannot be scored
        passed = [bool(r["passed"]) for r in task_rows]
        done = score_task(
            passed,
            {i: task_rows[i]["instructions"] for i in picks},
            [c for c in costs if c is not None],
            task.scores,
            min_correct,
            max_profile,
        )
        for i, score in done.samples.items():
            task_rows[i].update(
                dps=score.dps, dps_norm=score.dps_norm, matching_cluster=score.matching_cluster
            )
    return ref_costs


def perf_summary(frame: Any, evalperf: bool) -> dict[str, Any] | None:
    """The summary.json block of one model's samples: the counter and instruction counts, and
    for EvalPerf DPS / DPS_norm (`mean_scores` over the tasks scored; a task's, the mean over
    its profiled samples). None when the samples were not profiled."""
    if "perf_counter" not in frame.columns or frame["perf_counter"].isna().all():
        return None
    counter = check_same_counter(list(frame["perf_counter"].dropna()), "diag eval")
    counted = frame[frame["instructions"].notna()]
    out: dict[str, Any] = {
        "counter": counter,
        "n_profiled": int(len(counted)),
        "mean_instructions": float(counted["instructions"].mean()) if len(counted) else None,
    }
    if evalperf:
        scored = frame[frame["dps"].notna()]
        tasks = {
            str(tid): TaskScore(
                float(sub["dps"].mean()), float(sub["dps_norm"].mean()), list(sub["sample"]), {}
            )
            for tid, sub in scored.groupby("task_id", sort=True)
        }
        dps, dps_norm, n_scored = mean_scores(list(tasks.values()))
        out["evalperf"] = {
            "dps": dps,
            "dps_norm": dps_norm,
            "n_tasks_scored": n_scored,
            "n_tasks": int(frame["task_id"].nunique()),
            "per_task": {
                tid: {"dps": t.dps, "dps_norm": t.dps_norm, "n_profiled": len(t.profiled)}
                for tid, t in tasks.items()
            },
        }
    return out
