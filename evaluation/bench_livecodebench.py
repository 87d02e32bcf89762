"""LiveCodeBench code generation, judged the way LiveCodeBench's runner judges it.

    from evaluation.benchmarks import BenchSpec
    from evaluation.bench_livecodebench import load_livecodebench, lcb_stdio_program
    tasks = load_livecodebench(BenchSpec("livecodebench", bench_file="test5.jsonl",
                                         since="2024-08-01", until="2025-02-01"))

Input: the `test*.jsonl` files of the `livecodebench/code_generation_lite` release, one problem
a line: question_title, question_content, platform, question_id, contest_id, contest_date
(ISO datetime, e.g. "2023-08-21T00:00:00"), starter_code, difficulty, public_test_cases (a JSON
string), private_test_cases (a JSON string, or base64 of zlib of a pickled JSON string) and
metadata (a JSON string; `func_name` makes the problem functional). --bench-file takes one file
or a directory (every `test*.jsonl` in it, in name order).

Selection (LiveCodeBench's --start_date/--end_date): `since` <= contest_date <= `until`, the
flags read as midnight of that day and compared with the full contest datetime, as
LiveCodeBench compares them.

Prompt (`BenchTask.problem`): LiveCodeBench's generic chat prompt, the user message of
`get_generic_question_template_answer` (without its system message):

    ### Question:\\n{question_content}\\n\\n
    ### Format: <starter-code or stdin instruction>\\n```python\\n<starter code or
    # YOUR CODE HERE>\\n```\\n\\n### Answer: (use the provided format with backticks)\\n\\n

Judging (lcb_runner/evaluation/testing_util.py and compute_code_generation_metrics.py):

- A problem is functional when its metadata names `func_name`, else stdin (LiveCodeBench
  decides by `fn_name`, not by the tests' `testtype`). Tests: public then private.
- Both kinds get LiveCodeBench's import prelude (`from math import *`, `import sys`, ...,
  `sys.setrecursionlimit(50000)`), and `sys.set_int_max_str_digits(50000)`.
- Functional: `tests` is one block that takes `Solution()` when the program defines a
  `Solution`, else the module, looks the function up, and calls it on each test's arguments
  (one JSON value a line of the input); a tuple result becomes a list, and the result must
  `==` the JSON-decoded expected output. 6 s a test (SIGALRM); the first failure stops.
- Stdin: each case is one program (judge.py) that must print what `compare_stdout` accepts:
  both texts stripped, split on "\\n", each line stripped; the line counts must match; each
  line pair must be equal, or else both lines must split into numbers (`Decimal`) that are all
  equal ("1.0" == "1", "0.50" == "0.5"; there is no tolerance: "0.3333" != "0.33333").
  LiveCodeBench does not run the program as it is: it unwraps a final
  `if __name__ == '__main__':` block, moves the imports to module level and the rest into a
  function, calls it with stdin/open mocked and stdout captured, and counts `exit()` as a
  normal end. `lcb_stdio_program` turns a program into one that does exactly that in the
  sandbox (`BenchTask.stdio_wrapper`, applied by the judge to stdio programs).
- Time: 6 s per test (LiveCodeBench's default `timeout`); the whole sample gets LiveCodeBench's
  global timeout, (6 + 1) * number_of_tests + 5 seconds. LiveCodeBench sets no memory limit
  (`reliability_guard(None)`), so the sandbox keeps its default; output_bytes is raised so
  large expected outputs are compared whole.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import zlib
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from evaluation.benchmarks import DIFFICULTIES, BenchSpec, BenchTask, StdioCase
from plumbing import InputError, iter_jsonl

TEST_TIMEOUT_S = 6  # LiveCodeBench's default per-test timeout (codegen_metrics timeout=6)
OUTPUT_BYTES = 32 * 1024 * 1024  # stdout kept per case: big enough for the largest outputs
OUTPUT_KILL_MB = 64

STARTER_FORMAT = (
    "You will use the following starter code to write the solution to the problem and "
    "enclose your code within delimiters."
)
STDIN_FORMAT = (
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not "
    "directly test on the sample inputs). Enclose your code within delimiters as follows. "
    "Ensure that when the python program runs, it reads the inputs, runs the algorithm and "
    "writes output to STDOUT."
)

# LiveCodeBench's `import_string`, put before every program it runs: star imports (in this
# order, so later modules' names win), then the plain module imports, then the recursion limit.
_STAR_MODULES = (
    "string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random",
    "statistics", "itertools", "functools", "operator", "io", "sys", "json", "builtins",
    "typing",
)  # fmt: skip
_PLAIN_MODULES = _STAR_MODULES[:16]  # every module above but builtins and typing
IMPORT_PRELUDE = (
    "".join(f"from {m} import *\n" for m in _STAR_MODULES)
    + "".join(f"import {m}\n" for m in _PLAIN_MODULES)
    + "sys.setrecursionlimit(50000)\n"
)

_REQUIRED = (
    "question_title", "question_content", "platform", "question_id", "contest_id",
    "contest_date", "starter_code", "difficulty", "public_test_cases", "private_test_cases",
    "metadata",
)  # fmt: skip
_PLATFORMS = ("leetcode", "codeforces", "atcoder")


# ---------------------------------------------------------------------------------------------
# decoding


class _PlainDataUnpickler(pickle.Unpickler):
    """Loads plain data only: every global (class or function) a pickle names is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def decode_private_tests(text: str, where: str) -> list[dict[str, Any]]:
    """The private test cases: JSON as they stand, or base64 -> zlib -> pickle -> JSON (the
    order LiveCodeBench tries them in), unpickled without ever loading a global."""
    try:
        cases = json.loads(text)
    except ValueError:
        cases = _unpack_private_tests(text, where)
    return _test_list(cases, where, "private_test_cases")


def _unpack_private_tests(text: str, where: str) -> Any:
    try:
        packed = zlib.decompress(base64.b64decode(text.encode("utf-8")))
        payload = _PlainDataUnpickler(io.BytesIO(packed)).load()
    except Exception as err:  # noqa: BLE001 (any failure means the field is bad)
        raise InputError(
            f"{where}: field 'private_test_cases': not JSON and not base64+zlib+pickle "
            f"({type(err).__name__}: {err})"
        ) from None
    if not isinstance(payload, str | bytes):
        raise InputError(
            f"{where}: field 'private_test_cases': the pickle holds a "
            f"{type(payload).__name__}, not a JSON string"
        )
    try:
        return json.loads(payload)
    except ValueError as err:
        raise InputError(
            f"{where}: field 'private_test_cases': the unpickled text is not JSON ({err})"
        ) from None


def _test_list(cases: Any, where: str, field: str) -> list[dict[str, Any]]:
    if not isinstance(cases, list):
        raise InputError(f"{where}: field '{field}': expected a list of test cases")
    for n, case in enumerate(cases):
        if not (
            isinstance(case, dict)
            and isinstance(case.get("input"), str)
            and isinstance(case.get("output"), str)
            and case.get("testtype") in ("stdin", "functional")
        ):
            raise InputError(
                f"{where}: field '{field}': case {n} needs string input and output and a "
                "testtype of stdin or functional"
            )
    return cases


def parse_flag_date(value: str | None, flag: str) -> datetime | None:
    """A --since/--until value (YYYY-MM-DD) as LiveCodeBench reads it: midnight of that day."""
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise InputError(f"{flag} {value!r}: not a date in YYYY-MM-DD form") from None


# ---------------------------------------------------------------------------------------------
# prompt and judging pieces


def lcb_prompt(question_content: str, starter_code: str) -> str:
    """LiveCodeBench's generic prompt (the user message of its chat models)."""
    text = f"### Question:\n{question_content}\n\n"
    if starter_code:
        text += f"### Format: {STARTER_FORMAT}\n```python\n{starter_code}\n```\n\n"
    else:
        text += f"### Format: {STDIN_FORMAT}\n```python\n# YOUR CODE HERE\n```\n\n"
    return text + "### Answer: (use the provided format with backticks)\n\n"


def _stripped_lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _as_decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(token) for token in line.split()]
    except Exception:  # noqa: BLE001 (Decimal raises several types; any means "not numbers")
        return None


def compare_stdout(got: str, expected: str) -> bool:
    """LiveCodeBench's stdin verdict: same number of stripped lines, each line equal as text
    or, failing that, as a list of Decimal numbers."""
    got_lines, expected_lines = _stripped_lines(got), _stripped_lines(expected)
    if len(got_lines) != len(expected_lines):
        return False
    for got_line, expected_line in zip(got_lines, expected_lines):
        if got_line == expected_line:
            continue
        got_numbers = _as_decimals(got_line)
        expected_numbers = _as_decimals(expected_line)
        if got_numbers is None or expected_numbers is None:
            return False
        try:
            if got_numbers != expected_numbers:
                return False
        except Exception:  # noqa: BLE001 (a signalling NaN raises: LiveCodeBench fails it)
            return False
    return True


def global_timeout_s(n_tests: int) -> float:
    """LiveCodeBench's limit for one sample's whole run (check_correctness's join timeout)."""
    return float((TEST_TIMEOUT_S + 1) * n_tests + 5)


# The functional tests: run after the program, in its namespace. The program's top level ran
# under the timer the prefix started (LiveCodeBench's compile_code alarm); it is stopped first.
_FUNCTIONAL_TESTS = """\
def _lcb_check(func_name, inputs, outputs, limit_s):
    import json, signal

    class TimeLimitExceeded(Exception):
        pass

    def on_alarm(signum, frame):
        raise TimeLimitExceeded(f"ran over {limit_s} s")

    def short(value):
        text = repr(value)
        return text if len(text) <= 300 else text[:150] + "...(truncated)..." + text[-150:]

    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, on_alarm)
    space = globals()
    # LiveCodeBench instantiates Solution when the program defines it (LeetCode's form)
    owner = space["Solution"]() if "Solution" in space else None
    method = getattr(owner, func_name, None) if owner is not None else space.get(func_name)
    if method is None:
        raise AssertionError(f"the program defines no {func_name!r}")
    arguments = [[json.loads(line) for line in text.split("\\n")] for text in inputs]
    expected = [json.loads(text) for text in outputs]
    for index, (args, want) in enumerate(zip(arguments, expected)):
        signal.setitimer(signal.ITIMER_REAL, limit_s)
        try:
            got = method(*args)
        except TimeLimitExceeded:
            raise TimeLimitExceeded(f"test {index}: time limit exceeded ({limit_s} s)") from None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if isinstance(got, tuple):  # LiveCodeBench accepts a tuple for an expected list
            got = list(got)
        if not got == want:
            raise AssertionError(
                f"test {index}: wrong answer: got {short(got)}, expected {short(want)}"
            )


_lcb_check(__LCB_ARGUMENTS__)
"""

_FUNCTIONAL_PREFIX = (
    "import signal as _lcb_signal\n\n\n"
    "def _lcb_compile_alarm(signum, frame):\n"
    "    raise TimeoutError('the program ran over {limit_s} s at its top level')\n\n\n"
    "_lcb_signal.signal(_lcb_signal.SIGALRM, _lcb_compile_alarm)\n"
    "_lcb_signal.setitimer(_lcb_signal.ITIMER_REAL, {limit_s})\n"
    "del _lcb_signal, _lcb_compile_alarm\n"
    "import sys\n"
    "sys.set_int_max_str_digits(50000)\n"
)


def functional_tests(func_name: str, cases: list[dict[str, Any]]) -> str:
    """The test block of a functional problem (see the module docstring)."""
    inputs = [c["input"] for c in cases]
    outputs = [c["output"] for c in cases]
    arguments = f"{func_name!r}, {inputs!r}, {outputs!r}, {TEST_TIMEOUT_S!r}"
    return _FUNCTIONAL_TESTS.replace("__LCB_ARGUMENTS__", arguments)


# A stdin program as LiveCodeBench runs it (testing_util.grade_stdio): this harness reads the
# case's input, puts a devnull stdin in place (LiveCodeBench's worker processes have one),
# rewrites the source (final `__name__` guard unwrapped; imports hoisted; the rest becomes
# `wrapped_function`, after the import prelude), runs it in a module named tmp_sol, and calls
# the function with stdin/open mocked as LiveCodeBench mocks them and stdout captured; exit()
# ends it normally. What the program printed is written out for compare_stdout.
_STDIO_HARNESS = """\
def _lcb_stdio(source, prelude, limit_s):
    import ast, builtins, os, signal, sys, types
    from io import StringIO
    from unittest.mock import mock_open, patch

    class TimeLimitExceeded(Exception):
        pass

    def on_alarm(signum, frame):
        raise TimeLimitExceeded(f"ran over {limit_s} s")

    class StdinBuffer:
        def __init__(self, text):
            self.data = text.encode("utf-8")

        def read(self, *args):
            return self.data

        def readline(self, *args):
            return self.data.split(b"\\n")[0] + b"\\n"

    class Stdin:
        def __init__(self, text):
            self.text = text
            self.stream = StringIO(text)
            self.buffer = StdinBuffer(text)

        def read(self, *args):
            return self.text

        def readline(self, *args):
            return self.stream.readline(*args)

        def readlines(self, *args):
            return self.text.split("\\n")

        def __getattr__(self, name):
            return getattr(self.stream, name)

    text = sys.stdin.buffer.read().decode("utf-8")
    sys.stdin = open(os.devnull)
    sys.set_int_max_str_digits(50000)
    try:
        tree = ast.parse(source)
        last = tree.body[-1]
        guard = isinstance(last, ast.If) and ast.unparse(last.test).strip()
        if guard == "__name__ == '__main__'":
            source = ast.unparse(tree.body[:-1]) + "\\n" + ast.unparse(last.body)
    except Exception:
        pass
    try:
        tree = ast.parse(source)
        imports = [s for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
        rest = [s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom))]
        no_args = ast.arguments(
            posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]
        )
        wrapped = ast.FunctionDef(
            name="wrapped_function", args=no_args, body=rest, decorator_list=[], lineno=-1
        )
        source = prelude + "\\n" + ast.unparse(imports) + "\\n" + ast.unparse(wrapped)
    except Exception:
        pass
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    try:
        module = types.ModuleType("tmp_sol", "")
        exec(source, module.__dict__)
        owner = module.Solution() if "class Solution" in source else module
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    run = getattr(owner, "wrapped_function", None)
    if run is None:
        raise RuntimeError("LiveCodeBench finds no wrapped_function in this program")
    lines = iter(text.split("\\n"))
    real_stdout = sys.stdout
    captured = sys.stdout = StringIO()
    captured.close = lambda x: 1
    try:
        signal.setitimer(signal.ITIMER_REAL, limit_s)
        with patch("sys.stdin.read", lambda *args: text), patch(
            "sys.stdin.readlines", lambda *args: text.split("\\n")
        ), patch("sys.stdin.readline", lambda *args: next(lines)), patch(
            "sys.stdin", Stdin(text)
        ), patch("builtins.open", mock_open(read_data=text)):
            try:
                run()
            except SystemExit:
                pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.stdout = real_stdout
    real_stdout.write(captured.getvalue())
    real_stdout.flush()


_lcb_stdio(__LCB_ARGUMENTS__)
"""


def lcb_stdio_program(program: str) -> str:
    """The program one stdin case runs: `program` inside LiveCodeBench's stdin harness."""
    arguments = f"{program!r}, {IMPORT_PRELUDE!r}, {TEST_TIMEOUT_S!r}"
    return _STDIO_HARNESS.replace("__LCB_ARGUMENTS__", arguments)


# ---------------------------------------------------------------------------------------------
# loading


def _problem_files(path: str) -> list[str]:
    if os.path.isdir(path):
        files = sorted(str(p) for p in Path(path).glob("test*.jsonl"))
        if not files:
            raise InputError(f"--bench-file {path}: the directory holds no test*.jsonl file")
        return files
    return [path]


def _task(obj: dict[str, Any], where: str) -> tuple[BenchTask, datetime]:
    for name in _REQUIRED:
        if not isinstance(obj.get(name), str):
            raise InputError(f"{where}: field '{name}': missing or not a string")
    try:
        contest_date = datetime.fromisoformat(obj["contest_date"])
    except ValueError:
        raise InputError(
            f"{where}: field 'contest_date': {obj['contest_date']!r} is not an ISO date"
        ) from None
    difficulty = obj["difficulty"].lower()
    if difficulty not in DIFFICULTIES:
        raise InputError(f"{where}: field 'difficulty': {obj['difficulty']!r} is not one of "
                         f"{', '.join(DIFFICULTIES)}")  # fmt: skip
    if obj["platform"] not in _PLATFORMS:
        raise InputError(f"{where}: field 'platform': {obj['platform']!r} is not one of "
                         f"{', '.join(_PLATFORMS)}")  # fmt: skip
    try:
        public = json.loads(obj["public_test_cases"])
        metadata = json.loads(obj["metadata"])
    except ValueError as err:
        raise InputError(f"{where}: field 'public_test_cases' or 'metadata': {err}") from None
    if not isinstance(metadata, dict):
        raise InputError(f"{where}: field 'metadata': expected a JSON object")
    cases = _test_list(public, where, "public_test_cases") + decode_private_tests(
        obj["private_test_cases"], where
    )
    if not cases:
        raise InputError(f"{where}: the problem has no test cases")
    func_name = metadata.get("func_name")
    common: dict[str, Any] = {
        "task_id": obj["question_id"],
        "problem": lcb_prompt(obj["question_content"], obj["starter_code"]),
        "difficulty": difficulty,
        "family": obj["platform"],
        "contest_date": contest_date.strftime("%Y-%m-%d"),
        "timeout_s": global_timeout_s(len(cases)),
        "sandbox": {"output_bytes": OUTPUT_BYTES, "output_kill_mb": OUTPUT_KILL_MB},
    }
    if func_name is None:
        task = BenchTask(
            entry_point=None,
            tests=[],
            stdio=[StdioCase(c["input"], c["output"]) for c in cases],
            compare_stdout=compare_stdout,
            stdio_timeout_s=float(TEST_TIMEOUT_S),
            stdio_wrapper=lcb_stdio_program,
            **common,
        )
        return task, contest_date
    if not isinstance(func_name, str) or not func_name.isidentifier():
        raise InputError(f"{where}: field 'metadata': func_name {func_name!r} is not a name")
    for n, case in enumerate(cases):
        try:
            [json.loads(line) for line in case["input"].split("\n")]
            json.loads(case["output"])
        except ValueError:
            raise InputError(
                f"{where}: test case {n}: a functional input line or output is not JSON"
            ) from None
    task = BenchTask(
        entry_point=func_name,
        tests=functional_tests(func_name, cases),
        solution_prefix=IMPORT_PRELUDE + _FUNCTIONAL_PREFIX.format(limit_s=TEST_TIMEOUT_S),
        **common,
    )
    return task, contest_date


def load_livecodebench(spec: BenchSpec) -> list[BenchTask]:
    """The problems of a code_generation_lite file (or directory of test*.jsonl files) whose
    contest date lies in [spec.since, spec.until]."""
    if not spec.bench_file:
        raise InputError(
            "--bench livecodebench: needs --bench-file (a code_generation_lite test*.jsonl "
            "file or the directory holding them)"
        )
    since = parse_flag_date(spec.since, "--since")
    until = parse_flag_date(spec.until, "--until")
    tasks: list[BenchTask] = []
    seen: set[str] = set()
    for path in _problem_files(spec.bench_file):
        for where, obj in iter_jsonl(path, "--bench-file"):
            task, contest_date = _task(obj, where)
            if task.task_id in seen:
                raise InputError(f"{where}: duplicate question_id {task.task_id!r}")
            seen.add(task.task_id)
            if since is not None and contest_date < since:
                continue
            if until is not None and contest_date > until:
                continue
            tasks.append(task)
    if not tasks:
        raise InputError(
            f"--bench-file {spec.bench_file}: no problem dated within --since {spec.since} "
            f"--until {spec.until}"
        )
    return tasks
