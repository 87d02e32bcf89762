"""BigCodeBench: the loader, and verdicts equal to bigcodebench 0.2.5's own, sample by sample.

The fixtures (tests/data/bigcodebench/) are a dozen tasks in the release's format and samples of
every kind: right, wrong, hanging at import (bigcodebench: "timeout"), looping in one test (its
alarm turns that into a failed test), raising, exiting, dying with os._exit (bigcodebench:
"timeout"), not compiling, reading stdin, wrongly named, and one task that needs tensorflow.
The time limit is lowered to 2 s on both sides (bigcodebench's TIMEOUT_LIMIT, our
TIMEOUT_LIMIT_S) so that the hanging samples cost seconds, not minutes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT, skip_or_fail

from evaluation import bench_bigcodebench as bcb
from evaluation.benchmarks import BenchSpec
from evaluation.judge import Candidate, judge
from plumbing import InputError
from sandbox import SandboxConfig

DATA = ROOT / "tests" / "data" / "bigcodebench"
TASKS = DATA / "BigCodeBench-sample.jsonl"
SAMPLES = DATA / "samples.jsonl"
PARITY_PYTHON = ROOT / ".venv-parity" / "bin" / "python"
TIME_LIMIT_S = 2.0
MISSING_TASK = "BigCodeBench/10"


def _samples() -> list[dict]:
    return [json.loads(line) for line in SAMPLES.read_text().splitlines() if line.strip()]


def _load(tmp: Path | None = None, **spec) -> list:
    return bcb.load_bigcodebench(
        BenchSpec("bigcodebench", str(tmp or TASKS), **spec)  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def ours() -> dict[str, tuple[str, str]]:
    saved, bcb.TIMEOUT_LIMIT_S = bcb.TIMEOUT_LIMIT_S, TIME_LIMIT_S
    try:  # the limits are read when the tasks are made
        tasks = {t.task_id: t for t in _load()}
    finally:
        bcb.TIMEOUT_LIMIT_S = saved
    assert tasks["BigCodeBench/0"].timeout_s == TIME_LIMIT_S + 2
    samples = _samples()
    candidates = [
        Candidate(tasks[s["task_id"]], s.get("solution", s.get("completion")), "solution" not in s)
        for s in samples
    ]
    judged = judge(candidates, SandboxConfig(), workers=2)
    return {
        s["sample_id"]: (bcb.bigcodebench_status(j), j.detail)
        for s, j in zip(samples, judged, strict=True)
    }


@pytest.fixture(scope="module")
def theirs() -> dict[str, str]:
    if not PARITY_PYTHON.exists():
        skip_or_fail("bigcodebench 0.2.5 is not installed in .venv-parity: run `make parity`")
    env = dict(os.environ, MPLBACKEND="Agg")
    with tempfile.TemporaryFile("w+") as out:
        # bigcodebench leaves the helper processes of a sample that died running (its
        # multiprocessing Managers): its own session, so that they are ended with it
        proc = subprocess.Popen(
            [str(PARITY_PYTHON), str(ROOT / "tests" / "parity" / "bigcodebench_check.py"),
             str(TASKS), str(SAMPLES), "--timeout-limit", str(TIME_LIMIT_S)],
            stdout=out, stderr=subprocess.PIPE, env=env, cwd=ROOT, start_new_session=True,
        )  # fmt: skip
        try:
            code = proc.wait(timeout=300)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        assert code == 0, stderr[-2000:]
        out.seek(0)
        return json.load(out)


def test_verdicts_equal_bigcodebench_sample_by_sample(ours, theirs):
    assert set(theirs) == {s["sample_id"] for s in _samples()}
    compared = {sid: ours[sid][0] for sid in theirs if not sid.startswith("10-")}
    assert compared == {sid: theirs[sid] for sid in compared}
    # every kind of verdict is covered
    assert {"pass", "fail", "timeout"} <= set(compared.values())
    assert compared["0-module-hang"] == "timeout"
    assert compared["5-hard-exit"] == "timeout"
    assert compared["3-loops-in-one-test"] == "fail"


def test_canonical_solutions_pass_and_failures_name_the_first_failing_test(ours):
    canon = {sid: v for sid, v in ours.items() if "canonical" in sid and v[0] != "skipped"}
    assert len(canon) == 11
    assert all(status == "pass" for status, _ in canon.values()), canon
    status, detail = ours["3-case-sensitive"]
    assert status == "fail"
    assert "1 of 3 tests failed; first: test_words" in detail
    status, detail = ours["3-loops-in-one-test"]
    assert "first: test_empty: " in detail and "TimeoutException: Timed out!" in detail


def test_missing_library_task_is_skipped_with_its_modules(ours):
    status, detail = ours["10-canonical"]
    assert status == "skipped"
    assert detail == "missing modules: Levenshtein, tensorflow"
    tasks = _load()
    assert bcb.pip_install_hint(tasks) == "pip install python-Levenshtein tensorflow"
    assert bcb.pip_install_hint([t for t in tasks if t.task_id != MISSING_TASK]) is None


def test_loader_splits_calibration_and_limits():
    complete = {t.task_id: t for t in _load()}
    instruct = {t.task_id: t for t in _load(split="instruct")}
    raw = {json.loads(x)["task_id"]: json.loads(x) for x in TASKS.read_text().splitlines()}
    task, row = complete["BigCodeBench/0"], raw["BigCodeBench/0"]
    assert task.problem == row["complete_prompt"] == task.code_prompt
    assert instruct["BigCodeBench/0"].problem == row["instruct_prompt"]
    assert instruct["BigCodeBench/0"].code_prompt == row["complete_prompt"]
    assert task.solution_prefix == row["code_prompt"] + "\n    pass\n"
    assert _load(split="complete")[0].problem == task.problem
    assert _load(calibrated=False)[0].solution_prefix == ""
    assert task.timeout_s == 242.0  # untrusted_check: alarm max(240, 1) + 1, join one more
    assert task.sandbox["memory_mb"] == 30 * 1024
    assert "241.0, 30720, 10)" in task.tests
    assert len(_load(subset="hard")) == 12  # a file within the hard release's size


def test_bad_input_names_file_line_and_field(tmp_path):
    with pytest.raises(InputError, match="--split 'train'.*complete, instruct"):
        _load(split="train")
    with pytest.raises(InputError, match="--subset 'easy'.*full, hard"):
        _load(subset="easy")
    with pytest.raises(InputError, match="needs --bench-file"):
        bcb.load_bigcodebench(BenchSpec("bigcodebench"))
    rows = [json.loads(x) for x in TASKS.read_text().splitlines()]
    bad = tmp_path / "bad.jsonl"
    broken = dict(rows[1])
    del broken["code_prompt"]
    bad.write_text(json.dumps(rows[0]) + "\n" + json.dumps(broken) + "\n")
    with pytest.raises(InputError, match=r"bad\.jsonl:2: missing field 'code_prompt'"):
        _load(bad)
    bad.write_text(json.dumps(dict(rows[0], libs="['numpy'")) + "\n")
    with pytest.raises(InputError, match=r"bad\.jsonl:1: field 'libs': not a Python list"):
        _load(bad)
    bad.write_text(json.dumps(dict(rows[0], test=3)) + "\n")
    with pytest.raises(InputError, match=r"bad\.jsonl:1: field 'test': expected a string"):
        _load(bad)
    big = tmp_path / "full.jsonl"
    big.write_text(
        "".join(json.dumps(dict(rows[0], task_id=f"BigCodeBench/{i}")) + "\n" for i in range(149))
    )
    with pytest.raises(InputError, match="149 tasks, more than the 148 of BigCodeBench-Hard"):
        _load(big, subset="hard")
    assert len(_load(big)) == 149


def test_uncalibrated_solution_runs_as_it_is():
    """--no-calibrated: bigcodebench runs a `solution` as it is, so one that leaves out the
    imports its code prompt has fails (NameError); the calibrated prefix supplies them."""
    sample = next(s for s in _samples() if s["sample_id"] == "3-no-imports")
    verdicts = {}
    for calibrated in (True, False):
        task = next(t for t in _load(calibrated=calibrated) if t.task_id == sample["task_id"])
        (judged,) = judge([Candidate(task, sample["solution"])], SandboxConfig(), workers=1)
        verdicts[calibrated] = (bcb.bigcodebench_status(judged), judged.detail)
    assert verdicts[True][0] == "pass"
    assert verdicts[False][0] == "fail" and "NameError" in verdicts[False][1], verdicts
