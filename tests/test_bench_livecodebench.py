"""LiveCodeBench loader and judging: every verdict below is the one LiveCodeBench's own runner
(lcb_runner/evaluation/testing_util.py) gives, with the rule that decides it."""

from __future__ import annotations

import base64
import json
import pickle
import shutil
import zlib
from pathlib import Path

import pytest

from evaluation.bench_livecodebench import (
    IMPORT_PRELUDE,
    BenchTask,
    compare_stdout,
    decode_private_tests,
    global_timeout_s,
    lcb_prompt,
    load_livecodebench,
)
from evaluation.benchmarks import BENCHMARKS, BenchSpec, load_tasks
from evaluation.judge import Candidate, judge
from plumbing import InputError
from sandbox import SandboxConfig

DATA = Path(__file__).parent / "data" / "livecodebench"
PROBLEMS = str(DATA / "test.jsonl")
CONFIG = SandboxConfig(timeout_s=10)


@pytest.fixture(scope="module")
def tasks() -> dict[str, BenchTask]:
    return {t.task_id: t for t in load_livecodebench(BenchSpec("livecodebench", PROBLEMS))}


def run(task, *codes: str) -> list:
    return judge([Candidate(task, code) for code in codes], CONFIG, workers=2)


def samples() -> dict[str, str]:
    lines = (DATA / "samples.jsonl").read_text().splitlines()
    return {row["task_id"]: row["code"] for row in map(json.loads, lines)}


# ---------------------------------------------------------------------------------------------
# loading


def test_fields_of_each_kind(tasks):
    assert list(tasks) == ["abc900_a", "1900A", "3100", "3300"]
    stdin, functional = tasks["abc900_a"], tasks["3100"]
    assert (stdin.contest_date, stdin.difficulty, stdin.family) == ("2023-08-19", "easy", "atcoder")
    assert (tasks["3300"].contest_date, tasks["3300"].difficulty) == ("2024-09-28", "hard")
    # public case first, then the two private ones (decoded from base64+zlib+pickle)
    assert [(c.stdin, c.expected) for c in stdin.stdio] == [
        ("3\n1 2 3\n", "6\n"),
        ("1\n-5\n", "-5\n"),
        ("4\n1000000000 1000000000 1000000000 1000000000\n", "4000000000\n"),
    ]
    assert stdin.tests == [] and stdin.entry_point is None
    assert stdin.compare_stdout is compare_stdout and stdin.stdio_wrapper is not None
    assert stdin.stdio_timeout_s == 6.0
    assert stdin.timeout_s == global_timeout_s(3) == 26.0  # (6 + 1) * 3 tests + 5
    assert functional.stdio == [] and functional.entry_point == "twoSumIndices"
    assert functional.timeout_s == 26.0
    assert functional.solution_prefix.startswith(IMPORT_PRELUDE)
    assert stdin.sandbox["output_bytes"] >= 16 * 1024 * 1024
    assert "memory_mb" not in stdin.sandbox  # LiveCodeBench sets no memory limit
    # the registry reaches the loader
    assert [t.task_id for t in load_tasks(BenchSpec("livecodebench", PROBLEMS))] == list(tasks)
    assert BENCHMARKS["livecodebench"].needs_file


def test_prompt_is_lcb_generic_form(tasks):
    stdin, functional = tasks["abc900_a"], tasks["3100"]
    assert stdin.problem.startswith("### Question:\nYou are given N integers")
    assert "### Format: Read the inputs from stdin solve the problem" in stdin.problem
    assert stdin.problem.endswith(
        "```python\n# YOUR CODE HERE\n```\n\n### Answer: (use the provided format with backticks)\n\n"
    )
    assert "### Format: You will use the following starter code" in functional.problem
    assert "```python\nclass Solution:\n    def twoSumIndices(" in functional.problem
    assert lcb_prompt("Q", "def f():") == (
        "### Question:\nQ\n\n### Format: You will use the following starter code to write the "
        "solution to the problem and enclose your code within delimiters.\n```python\ndef f():\n"
        "```\n\n### Answer: (use the provided format with backticks)\n\n"
    )


def test_since_until_select_by_contest_datetime():
    def ids(since=None, until=None):
        spec = BenchSpec("livecodebench", PROBLEMS, since=since, until=until)
        return [t.task_id for t in load_livecodebench(spec)]

    assert ids(since="2024-01-01") == ["1900A", "3100", "3300"]
    assert ids(since="2024-05-11", until="2024-09-28") == ["3100", "3300"]  # both ends inclusive
    # LiveCodeBench compares the contest datetime with midnight of --until: a contest at
    # 2024-01-31T19:30 is after 2024-01-31 00:00, so --until 2024-01-31 leaves it out
    assert ids(until="2024-01-31") == ["abc900_a"]
    assert ids(until="2024-02-01") == ["abc900_a", "1900A"]
    with pytest.raises(InputError, match="no problem dated within"):
        ids(since="2030-01-01")


def test_bad_date_flag_is_named():
    with pytest.raises(InputError, match="--since '2024/01/01': not a date in YYYY-MM-DD"):
        load_livecodebench(BenchSpec("livecodebench", PROBLEMS, since="2024/01/01"))
    with pytest.raises(InputError, match="--until '2024-13-01'"):
        load_livecodebench(BenchSpec("livecodebench", PROBLEMS, until="2024-13-01"))


def test_private_tests_are_really_packed_and_plain_json_also_loads():
    rows = [json.loads(line) for line in Path(PROBLEMS).read_text().splitlines()]
    packed = rows[0]["private_test_cases"]
    with pytest.raises(ValueError):
        json.loads(packed)  # not JSON: the base64+zlib+pickle form
    assert len(decode_private_tests(packed, "f:1")) == 2
    assert json.loads(rows[3]["private_test_cases"])[0]["output"] == "3"  # the plain-JSON form


class _Shell:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_globals(tmp_path):
    evil = base64.b64encode(zlib.compress(pickle.dumps(_Shell()))).decode()
    row = json.loads(Path(PROBLEMS).read_text().splitlines()[0])
    bad = tmp_path / "test.jsonl"
    bad.write_text(json.dumps({**row, "private_test_cases": evil}) + "\n")
    with pytest.raises(InputError) as err:
        load_livecodebench(BenchSpec("livecodebench", str(bad)))
    text = str(err.value)
    assert f"{bad}:1" in text and "'private_test_cases'" in text
    assert "refused global" in text and "system" in text
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text(json.dumps({**row, "private_test_cases": "%%%"}) + "\n")
    with pytest.raises(InputError, match=r"garbage.jsonl:1: field 'private_test_cases'"):
        load_livecodebench(BenchSpec("livecodebench", str(garbage)))


def test_directory_of_release_files(tmp_path):
    shutil.copy(PROBLEMS, tmp_path / "test.jsonl")
    (tmp_path / "notes.jsonl").write_text("not read\n")
    spec = BenchSpec("livecodebench", str(tmp_path))
    assert len(load_livecodebench(spec)) == 4
    shutil.copy(PROBLEMS, tmp_path / "test2.jsonl")
    with pytest.raises(InputError, match=r"test2.jsonl:1: duplicate question_id 'abc900_a'"):
        load_livecodebench(spec)


# ---------------------------------------------------------------------------------------------
# LiveCodeBench's stdout comparison


def test_compare_stdout_rules():
    assert compare_stdout("6   \n\n\n", "6\n")  # both sides stripped, then each line stripped
    assert compare_stdout("  1 2\r\n3\n", "1 2\n3")  # "\r" is stripped with the line
    assert compare_stdout("3.0\n", "3\n")  # numeric tokens: Decimal("3.0") == Decimal("3")
    assert compare_stdout("1  2.50\n", "1 2.5\n")  # split on whitespace, then Decimal
    assert compare_stdout("1e3\n", "1000\n")  # Decimal reads exponents
    assert not compare_stdout("0.333333\n", "0.3333333\n")  # no tolerance at all
    assert not compare_stdout("1\n2\n", "1\n")  # one line too many: length mismatch
    assert not compare_stdout("1\n\n2\n", "1\n2\n")  # an inner blank line is a line
    assert not compare_stdout("Yes\n", "YES\n")  # text compares exactly
    assert not compare_stdout("a  b\n", "a b\n")  # not numbers: whitespace inside counts
    assert compare_stdout("nan\n", "nan\n")  # the same text: equal before any Decimal
    assert not compare_stdout("NaN 1\n", "nan 1\n")  # Decimal NaN never equals itself
    assert compare_stdout("", "\n")  # both empty after stripping


# ---------------------------------------------------------------------------------------------
# judging through evaluation.judge


def test_every_canonical_sample_passes(tasks):
    for task_id, code in samples().items():
        [verdict] = run(tasks[task_id], code)
        assert verdict.passed, (task_id, verdict.status, verdict.detail)


def test_stdin_verdicts(tasks):
    sum_task, halves = tasks["abc900_a"], tasks["1900A"]
    read_all = "import sys\ndata = sys.stdin.read().split()\n"
    verdicts = run(
        sum_task,
        # LiveCodeBench unwraps a final `if __name__ == '__main__':` block: passes
        "def main():\n    input()\n    print(sum(map(int, input().split())))\n\n"
        "if __name__ == '__main__':\n    main()\n",
        # exit() after printing is a normal end there (SystemExit is caught): passes
        read_all + "print(sum(map(int, data[1:])))\nexit()\n",
        # deque without an import: LiveCodeBench's prelude star-imports collections: passes
        read_all + "print(sum(deque(map(int, data[1:]))))\n",
        # trailing spaces and blank lines are stripped: passes
        read_all + "print(str(sum(map(int, data[1:]))) + '   ')\nprint()\nprint()\n",
        # an extra line of output: wrong answer (line counts differ)
        read_all + "print(sum(map(int, data[1:])))\nprint('done')\n",
        # the program sits in a function, so `global n` finds no module-level n: runtime error
        "n = int(input())\nrow = input()\ndef f():\n    global n\n    return n\nprint(f())\n",
        # `for line in sys.stdin`: LiveCodeBench's stdin mock is not iterable: runtime error
        "import sys\nlines = [line for line in sys.stdin]\nprint(sum(map(int, lines[1].split())))\n",
    )
    assert [v.passed for v in verdicts] == [True, True, True, True, False, False, False]
    assert verdicts[4].status == "failed" and "stdio case 1/3" in verdicts[4].detail
    assert verdicts[5].status == "error" and "NameError" in verdicts[5].detail
    assert verdicts[6].status == "error" and "not iterable" in verdicts[6].detail
    verdicts = run(
        halves,
        # "3.0" for the expected "3": equal as Decimals: passes
        "t = int(input())\nfor _ in range(t):\n    print(f'{int(input()) / 2:.1f}')\n",
        # "2.500000" vs "2.5": equal as Decimals: passes
        "t = int(input())\nfor _ in range(t):\n    print(f'{int(input()) / 2:.6f}')\n",
        # "2" for the expected "2.5": Decimal(2) != Decimal(2.5) (no tolerance): wrong answer
        "t = int(input())\nfor _ in range(t):\n    print(int(input()) // 2)\n",
    )
    assert [v.passed for v in verdicts] == [True, True, False]
    assert verdicts[2].status == "failed"


def test_functional_verdicts(tasks):
    two_sum, vowels = tasks["3100"], tasks["3300"]
    head = "class Solution:\n    def twoSumIndices(self, nums: List[int], target: int):\n"
    verdicts = run(
        two_sum,
        # a tuple for the expected list: LiveCodeBench turns tuples into lists: passes
        head + "        for j in range(len(nums)):\n            for i in range(j):\n"
        "                if nums[i] + nums[j] == target:\n                    return (i, j)\n",
        # indices in the wrong order: [1, 0] != [0, 1]: wrong answer at test 0
        head + "        for j in range(len(nums)):\n            for i in range(j):\n"
        "                if nums[i] + nums[j] == target:\n                    return [j, i]\n",
        # right on the public test, wrong on the second private one (test 2)
        head + "        return [0, 1] if nums[0] == 2 else [1, 2]\n",
        # an exception inside the method: runtime error
        head + "        raise ValueError('boom')\n",
        # a top-level function of the right name: LiveCodeBench uses the module when there
        # is no `class Solution`: passes
        "def twoSumIndices(nums, target):\n    pos = {}\n    for j, x in enumerate(nums):\n"
        "        if target - x in pos:\n            return [pos[target - x], j]\n"
        "        pos[x] = j\n",
    )
    assert [v.passed for v in verdicts] == [True, False, False, False, True]
    assert "test 0: wrong answer: got [1, 0], expected [0, 1]" in verdicts[1].detail
    assert "test 2: wrong answer" in verdicts[2].detail
    assert verdicts[3].status == "error" and "boom" in verdicts[3].detail
    [slow] = run(
        vowels,
        "import time\nclass Solution:\n    def countVowelStrings(self, words):\n"
        "        time.sleep(7)\n        return 2\n",
    )
    # 6 s per test (LiveCodeBench's timeout), well inside the task's 19 s limit
    assert not slow.passed and "test 0: time limit exceeded (6 s)" in slow.detail
