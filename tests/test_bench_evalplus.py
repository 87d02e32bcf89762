"""HumanEval+ / MBPP+ loaders (evaluation/bench_evalplus.py): verdicts equal evalplus 0.3.1's.

The parity tests run tests/parity/evalplus_check.py under .venv-parity (evalplus's own
trusted_exec + untrusted_check with fast_check=True) on the fixture tasks and samples in
tests/data/evalplus, and compare each sample's (base, plus) status with ours: passed -> "pass",
timeout -> "timeout", anything else -> "fail".
"""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, skip_or_fail

from evaluation.bench_evalplus import (
    cache_dir,
    load_humaneval_plus,
    load_mbpp_plus,
    mbpp_deserialize,
    program_timeout_s,
)
from evaluation.benchmarks import BenchSpec, load_tasks
from evaluation.judge import Candidate, judge
from plumbing import InputError
from sandbox import SandboxConfig

DATA = ROOT / "tests" / "data" / "evalplus"
HE_FILE, HE_SAMPLES = DATA / "HumanEvalPlus-fixture.jsonl", DATA / "humaneval_plus_samples.jsonl"
MB_FILE, MB_SAMPLES = DATA / "MbppPlus-fixture.jsonl", DATA / "mbpp_plus_samples.jsonl"
PARITY_PY = ROOT / ".venv-parity" / "bin" / "python"
CHECKER = ROOT / "tests" / "parity" / "evalplus_check.py"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _evalplus_status(status: str) -> str:
    return {"passed": "pass", "timeout": "timeout"}.get(status, "fail")


def _our_statuses(judged: list) -> list[list[str]]:
    return [[_evalplus_status(j.base_status), _evalplus_status(j.plus_status)] for j in judged]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CODECOT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize(
    "dataset, bench, problems, samples",
    [
        ("humaneval", "humaneval+", HE_FILE, HE_SAMPLES),
        ("mbpp", "mbpp+", MB_FILE, MB_SAMPLES),
    ],
)
def test_statuses_equal_evalplus_sample_by_sample(dataset, bench, problems, samples):
    if not PARITY_PY.exists():
        skip_or_fail("evalplus 0.3.1 is not installed in .venv-parity: run `make parity`")
    theirs = subprocess.Popen(
        [str(PARITY_PY), str(CHECKER), "--dataset", dataset, "--problems", str(problems),
         "--samples", str(samples), "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    tasks = {t.task_id: t for t in load_tasks(BenchSpec(bench, bench_file=str(problems)))}
    rows = _rows(samples)
    judged = judge(
        [
            Candidate(
                tasks[r["task_id"]], r.get("solution") or r["completion"], "solution" not in r
            )
            for r in rows
        ],
        SandboxConfig(),
    )
    ours = _our_statuses(judged)
    out, err = theirs.communicate(timeout=300)
    assert theirs.returncode == 0, err[-3000:]
    expected = json.loads(out)["statuses"]
    mismatches = [
        (r["task_id"], r["label"], mine, them)
        for r, mine, them in zip(rows, ours, expected)
        if mine != them
    ]
    assert not mismatches, mismatches
    assert len(ours) == len(rows) == len(expected)
    # the fixtures cover every outcome on both sides
    seen = {s for pair in expected for s in pair}
    assert seen >= {"pass", "fail"}
    assert ["pass", "fail"] in expected  # wrong on plus only
    if dataset == "humaneval":
        assert ["timeout", "timeout"] in expected
        slow = next(j for r, j in zip(rows, judged) if r["label"].startswith("too slow"))
        assert "plus input 1/1: timed out (limit 1s)" in slow.detail


def test_canonical_solutions_pass_their_own_benchmark():
    tasks = load_humaneval_plus(BenchSpec("humaneval+", bench_file=str(HE_FILE)))
    tasks += load_mbpp_plus(BenchSpec("mbpp+", bench_file=str(MB_FILE)))
    rows = {r["task_id"]: r for r in _rows(HE_FILE) + _rows(MB_FILE)}
    judged = judge(
        [Candidate(t, rows[t.task_id]["canonical_solution"], is_completion=True) for t in tasks],
        SandboxConfig(),
    )
    for task, j in zip(tasks, judged):
        if task.entry_point == "find_zero":
            # evalplus 0.3.1's find_zero oracle never counts a passing input: always "fail"
            assert not j.passed and "never counts an input" in j.detail, j.detail
            continue
        assert j.passed and j.base_passed, (task.task_id, j.status, j.detail)


def test_expected_outputs_are_cached_per_file_digest(_cache, monkeypatch):
    assert cache_dir() == _cache
    first = load_mbpp_plus(BenchSpec("mbpp+", bench_file=str(MB_FILE)))
    files = list(_cache.iterdir())
    assert len(files) == 1 and files[0].name.startswith("mbpp-") and files[0].suffix == ".json"
    blobs = json.loads(files[0].read_text())["tasks"]["Mbpp/2"]
    assert blobs["plus_expected"].startswith("marshal:") and len(blobs["plus_time"]) == 2

    def no_sandbox(*args, **kwargs):
        raise AssertionError("the sandbox ran although the cache holds every task")

    monkeypatch.setattr("sandbox.run_programs", no_sandbox)
    second = load_mbpp_plus(BenchSpec("mbpp+", bench_file=str(MB_FILE)))
    assert [(t.task_id, t.tests, t.base_tests) for t in first] == [
        (t.task_id, t.tests, t.base_tests) for t in second
    ]


def test_unmarshallable_outputs_travel_pickled(_cache):
    load_humaneval_plus(BenchSpec("humaneval+", str(HE_FILE)))
    (cached,) = _cache.iterdir()
    tasks = json.loads(cached.read_text())["tasks"]
    assert tasks["HumanEval/11"]["plus_expected"].startswith("pickle:")  # a Counter
    assert tasks["HumanEval/0"]["plus_expected"].startswith("marshal:")


def test_task_fields_problem_text_and_timeouts():
    he = {t.task_id: t for t in load_humaneval_plus(BenchSpec("humaneval+", str(HE_FILE)))}
    add = he["HumanEval/0"]
    assert add.problem.startswith("Complete the following Python function:\n```python\ndef add(")
    assert add.code_prompt == _rows(HE_FILE)[0]["prompt"]
    assert "_evalplus_check(globals(), 'humaneval', 'add', 0, [1.0, 1.0, 1.0]" in add.tests
    assert "'plus')" in add.tests and "'base')" in add.base_tests
    # canonical calls take microseconds: every limit is the 1 s floor, sum + 1 + join's 1
    assert add.timeout_s == 3 + 2 and add.sandbox == {"memory_mb": 4096, "fork_server": True}
    assert program_timeout_s([1.0] * 100) == 62.0
    mb = {t.task_id: t for t in load_mbpp_plus(BenchSpec("mbpp+", str(MB_FILE)))}
    assert mb["Mbpp/2"].problem.startswith("Write a function to find the shared elements")
    assert mb["Mbpp/2"].code_prompt is None


def test_mbpp_inputs_deserialised_by_task_id():
    assert mbpp_deserialize("Mbpp/2", [[[1, 2], [3]]]) == [[(1, 2), (3,)]]
    assert mbpp_deserialize("Mbpp/106", [[[1], [2, 3]]]) == [[[1], (2, 3)]]
    assert mbpp_deserialize("Mbpp/580", [[[1, [2, [3]]]]]) == [((1, (2, (3,))),)]
    assert mbpp_deserialize("Mbpp/115", [[[[1], []]]]) == [[[{1}, {}]]]
    assert mbpp_deserialize("Mbpp/124", [[1, "1+2j"]]) == [(1.0, 1 + 2j)]
    assert mbpp_deserialize("Mbpp/259", [[[[1, 2]], [[3]]]]) == [[((1, 2),), ((3,),)]]
    assert mbpp_deserialize("Mbpp/722", [[{"a": [1, 2]}, 3]]) == [[{"a": (1, 2)}, 3]]
    assert mbpp_deserialize("Mbpp/17", [[[1, 2]]]) == [[[1, 2]]]


def test_gzipped_release_file_and_legacy_test_rows(tmp_path):
    gz = tmp_path / "MbppPlus.jsonl.gz"
    gz.write_bytes(gzip.compress(MB_FILE.read_bytes()))
    assert len(load_mbpp_plus(BenchSpec("mbpp+", str(gz)))) == len(_rows(MB_FILE))
    legacy = load_humaneval_plus(
        BenchSpec("humaneval+", str(ROOT / "tests/data/evalplus_sample.jsonl"))
    )
    he_style = next(t for t in legacy if t.code_prompt is not None)
    assert he_style.base_tests is None and he_style.timeout_s is None
    assert he_style.tests.rstrip().endswith(f"check({he_style.entry_point})")


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_bad_input_names_file_line_and_field(tmp_path):
    rows = _rows(HE_FILE)[:2]
    spec = lambda p: BenchSpec("humaneval+", bench_file=p)  # noqa: E731
    missing = [rows[0], {k: v for k, v in rows[1].items() if k != "plus_input"}]
    path = _write(tmp_path / "missing.jsonl", missing)
    with pytest.raises(InputError, match=rf"{path}:2: missing field 'plus_input'"):
        load_humaneval_plus(spec(path))
    wrong = [rows[0], {**rows[1], "base_input": [[1.0], 2]}]
    path = _write(tmp_path / "wrong.jsonl", wrong)
    with pytest.raises(InputError, match=rf"{path}:2: field 'base_input': input 1 is a int"):
        load_humaneval_plus(spec(path))
    path = _write(tmp_path / "atol.jsonl", [{**rows[0], "atol": "0"}])
    with pytest.raises(InputError, match=rf"{path}:1: field 'atol': expected a finite number"):
        load_humaneval_plus(spec(path))
    path = _write(tmp_path / "prompt.jsonl", [{**rows[0], "prompt": 3}])
    with pytest.raises(InputError, match=rf"{path}:1: field 'prompt': expected a string"):
        load_humaneval_plus(spec(path))
    with pytest.raises(InputError, match="nowhere.jsonl"):
        load_humaneval_plus(spec(str(tmp_path / "nowhere.jsonl")))
    broken = {**rows[0], "canonical_solution": "    return x / 0\n"}
    path = _write(tmp_path / "broken.jsonl", [broken])
    with pytest.raises(InputError, match=rf"{path}: task HumanEval/0 .*canonical_solution fails"):
        load_humaneval_plus(spec(path))
