"""EvalPerf: the loader, DPS / DPS_norm as evalplus defines them, instruction counting through the
sandbox (Valgrind here: this VM has no PMU), and `diag eval --bench evalperf` end to end.

The fixture (tests/fixtures/evalperf/evalperf.jsonl) holds three tasks in EvalPerf's layout,
written for these tests: sum_to (three references: a loop, sum(range), the closed form),
has_duplicate (pairs vs a set; pe_input as a list, no prompt) and Mbpp/106 (pe_input
deserialised as evalplus does: its second argument becomes a tuple).
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from evaluation.bench_evalperf import EvalPerfTask, load_evalperf
from evaluation.benchmarks import BenchSpec
from evaluation.perf import (
    ProfileJob,
    TaskScore,
    check_same_counter,
    mean_scores,
    profile,
    read_count,
    resolve_counter,
    samples_to_profile,
    score_sample,
    score_task,
)
from plumbing import InputError

FIXTURE = Path(__file__).parent / "fixtures" / "evalperf" / "evalperf.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text().splitlines()]


def _write(tmp_path: Path, rows: list[dict]) -> str:
    path = tmp_path / "evalperf.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


# ---------------------------------------------------------------------------------------------
# DPS and DPS_norm: pure functions, values computed by hand from evalplus's definition

# three references, slowest to fastest, with known costs and scores
REF_COSTS = [5000, 2000, 1000]
SCORES = [10.0, 50.0, 90.0]


@pytest.mark.parametrize(
    ("cost", "dps", "dps_norm", "cluster"),
    [
        (800, 90.0, 100.0, 2),  # cheaper than the fastest reference: its score; norm 3/3
        (1000, 90.0, 100.0, 2),  # as costly as it: "<=" matches
        (1001, 50.0, 200 / 3, 1),  # between the fastest and the middle one: norm 2/3
        (2000, 50.0, 200 / 3, 1),
        (4999, 10.0, 100 / 3, 0),  # only the slowest beaten: norm 1/3
        (6000, 0.0, 0.0, -1),  # costlier than every reference
        (None, 0.0, 0.0, -1),  # profiling failed (evalplus: a broken profile scores 0)
    ],
)
def test_score_sample_matches_the_definition(cost, dps, dps_norm, cluster):
    got = score_sample(cost, REF_COSTS, SCORES)
    assert got.dps == dps
    assert got.dps_norm == pytest.approx(dps_norm, abs=1e-12)
    assert got.matching_cluster == cluster


def test_score_task_means_over_profiled_samples():
    passed = [True, True, False, True, True]
    costs = {0: 800, 1: 4000, 3: 6000, 4: 1500}
    # min_correct 3, default max_profile = min(2 * 3, 5 samples) = 5: all four passing profiled
    task = score_task(passed, costs, REF_COSTS, SCORES, min_correct=3)
    assert task.profiled == [0, 1, 3, 4]
    assert task.dps == pytest.approx((90 + 10 + 0 + 50) / 4)
    assert task.dps_norm == pytest.approx((100 + 100 / 3 + 0 + 200 / 3) / 4)
    # max_profile 2: only the first two passing samples count
    two = score_task(passed, costs, REF_COSTS, SCORES, min_correct=3, max_profile=2)
    assert two.profiled == [0, 1]
    assert two.dps == pytest.approx(50.0) and two.dps_norm == pytest.approx(200 / 3)
    # fewer passing samples than min_correct: not scored (left out of the run's mean)
    none = score_task(passed, costs, REF_COSTS, SCORES, min_correct=5)
    assert none.dps is None and none.dps_norm is None and none.profiled == []
    assert samples_to_profile([False, False], min_correct=1) == []
    # the run: the mean over scored tasks only
    dps, norm, n = mean_scores([task, two, none])
    assert n == 2
    assert dps == pytest.approx((37.5 + 50.0) / 2)
    assert norm == pytest.approx(((100 + 100 / 3 + 200 / 3) / 4 + 200 / 3) / 2)
    assert mean_scores([none]) == (None, None, 0)
    assert isinstance(none, TaskScore)


def test_counters_are_never_mixed():
    assert check_same_counter(["valgrind", "valgrind", None], "report") == "valgrind"
    with pytest.raises(InputError, match="different counters"):
        check_same_counter(["valgrind", "hw"], "report")
    with pytest.raises(InputError, match="--perf-counter 'perf'"):
        resolve_counter("perf")


def test_counter_resolution_here():
    """This VM has no PMU: hw is refused with the reason, auto falls back to valgrind."""
    from evaluation.perf import hw_counter_problem

    problem = hw_counter_problem()
    if problem is None:  # a machine with a PMU: hw wins under auto
        assert resolve_counter("auto") == "hw"
        return
    with pytest.raises(InputError, match="no hardware instruction counter"):
        resolve_counter("hw")
    if shutil.which("valgrind") is None:
        with pytest.raises(InputError, match="Debian package `valgrind`"):
            resolve_counter("auto")
    else:
        assert resolve_counter("auto") == "valgrind"


def test_read_count_rejects_forged_or_missing_counts():
    log = "==7== Events    : Ir\n==7== Collected : 12345\n==7==\n"
    assert read_count("valgrind", "passed", 0, "", log) == (12345, "")
    assert read_count("valgrind", "passed", 0, "", "==7== Collected : 0\n")[0] is None
    assert read_count("valgrind", "failed", 4, "", log) == (None, "the profiled call raised")
    assert read_count("hw", "passed", 0, "@@codecot-instructions@@77\n", "") == (77, "")


# ---------------------------------------------------------------------------------------------
# the loader


def test_fixture_loads_in_evalperf_layout():
    tasks = load_evalperf(BenchSpec("evalperf", bench_file=str(FIXTURE)))
    assert [t.task_id for t in tasks] == ["HumanEval/9001", "HumanEval/9002", "Mbpp/106"]
    sum_to, dup, mbpp = tasks
    assert isinstance(sum_to, EvalPerfTask)
    assert sum_to.scores == [20.0, 60.0, 95.0] and len(sum_to.reference) == 3
    assert sum_to.pe_args == [400]  # pe_input given as a JSON string (the dataset's form)
    assert sum_to.code_prompt is not None and "def sum_to" in sum_to.problem
    assert dup.pe_args == [list(range(40))]  # given as a list
    assert "def has_duplicate(xs):" in dup.problem and "occurs twice" in dup.problem
    assert mbpp.pe_args == [list(range(30)), (1, 2)]  # Mbpp/106: the tuple evalplus passes
    assert mbpp.code_prompt is None and mbpp.problem.startswith("Write a function")


def test_gzipped_file_loads(tmp_path):
    path = tmp_path / "evalperf.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(FIXTURE.read_text())
    assert len(load_evalperf(BenchSpec("evalperf", bench_file=str(path)))) == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"reference": []}, r":2: field 'reference': the task has no references"),
        ({"reference": None}, r":2: field 'reference': expected a list"),
        ({"scores": [1.0]}, r":2: field 'scores': expected a list of 3 numbers"),
        ({"scores": [90.0, 50.0, 10.0]}, r":2: field 'scores': must be non-decreasing"),
        ({"scores": [1, 2, 300]}, r":2: field 'scores': 300 is not a number in 0..100"),
        ({"pe_input": "[[400]"}, r":2: field 'pe_input': not valid JSON"),
        ({"pe_input": [400]}, r":2: field 'pe_input': expected a non-empty list of argument"),
        ({"entry_point": 3}, r":2: field 'entry_point': expected a string"),
        ({"reference": ["def other():\n    pass\n"], "scores": [5.0]}, r"does not define"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path, change, message):
    rows = [ROWS[1], {**ROWS[0], **change}]
    if "reference" in change and "prompt" in rows[1] and "does not define" in message:
        del rows[1]["prompt"]
    path = _write(tmp_path, rows)
    with pytest.raises(InputError, match=message) as err:
        load_evalperf(BenchSpec("evalperf", bench_file=path))
    assert str(err.value).startswith(path)


def test_missing_fields_and_file(tmp_path):
    for name in ("task_id", "entry_point", "reference", "scores", "pe_input"):
        row = {k: v for k, v in ROWS[0].items() if k != name}
        with pytest.raises(InputError, match=rf":1: missing field '{name}'"):
            load_evalperf(BenchSpec("evalperf", bench_file=_write(tmp_path, [row])))
    with pytest.raises(InputError, match="needs --bench-file"):
        load_evalperf(BenchSpec("evalperf"))
    with pytest.raises(InputError, match="duplicate task_id"):
        load_evalperf(BenchSpec("evalperf", bench_file=_write(tmp_path, [ROWS[0], ROWS[0]])))


def test_registered_in_benchmarks():
    from evaluation.benchmarks import BENCHMARKS, load_tasks

    assert BENCHMARKS["evalperf"].needs_file
    assert len(load_tasks(BenchSpec("evalperf", bench_file=str(FIXTURE)))) == 3


# ---------------------------------------------------------------------------------------------
# correctness: output on pe_input equal to the fastest reference's (the Python sandbox)


def test_correctness_against_the_reference():
    from evaluation.judge import Candidate, judge
    from sandbox import SandboxConfig

    tasks = {t.task_id: t for t in load_evalperf(BenchSpec("evalperf", bench_file=str(FIXTURE)))}
    sum_to, dup, mbpp = tasks["HumanEval/9001"], tasks["HumanEval/9002"], tasks["Mbpp/106"]
    candidates = [
        Candidate(sum_to, sum_to.reference[0]),  # every reference is correct
        Candidate(sum_to, "def sum_to(n):\n    return n * (n - 1) // 2\n"),  # off by n
        Candidate(dup, dup.reference[0]),
        Candidate(dup, "def has_duplicate(xs):\n    return True\n"),
        Candidate(mbpp, mbpp.reference[0]),  # needs the tuple: list + tuple would raise
        # an int is expected: compared exactly, as evalplus does (80200.0 == 80200; no atol)
        Candidate(sum_to, "def sum_to(n):\n    return float(n * (n + 1) // 2)\n"),
        Candidate(sum_to, "def sum_to(n):\n    return n * (n + 1) / 2 + 1e-9\n"),
    ]
    got = judge(candidates, SandboxConfig(timeout_s=20), workers=2)
    assert [j.status for j in got] == [
        "passed",
        "failed",
        "passed",
        "failed",
        "passed",
        "passed",
        "failed",
    ]
    assert "output differs from the reference's: got 79800" in got[1].detail


RELEASE = (
    str(FIXTURE.parent / "HumanEvalPlus-evalperf.jsonl"),
    str(FIXTURE.parent / "MbppPlus-evalperf.jsonl"),
)


def test_correctness_from_the_release_tests_with_tests_file(tmp_path, monkeypatch):
    """--tests-file: the HumanEval+/MBPP+ base and plus tests decide, as evalplus's
    correctness_check does; the pe_input comparison no longer applies."""
    from evaluation.judge import Candidate, judge
    from sandbox import SandboxConfig

    monkeypatch.setenv("CODECOT_CACHE_DIR", str(tmp_path / "cache"))
    spec = BenchSpec("evalperf", bench_file=str(FIXTURE), tests_files=RELEASE)
    tasks = {t.task_id: t for t in load_evalperf(spec)}
    sum_to, dup, mbpp = tasks["HumanEval/9001"], tasks["HumanEval/9002"], tasks["Mbpp/106"]
    assert sum_to.base_tests is not None and "_evalplus_check" in sum_to.tests
    assert sum_to.reference and sum_to.pe_args == [400]  # still profiled on pe_input
    candidates = [
        Candidate(sum_to, sum_to.reference[0]),
        # right on pe_input (n = 400), wrong on the base input 0: the release tests catch it
        Candidate(sum_to, "def sum_to(n):\n    return n * (n + 1) // 2 if n else -1\n"),
        # wrong on pe_input only: the pe_input comparison would fail it, the release tests pass it
        Candidate(sum_to, "def sum_to(n):\n    return 0 if n > 300 else n * (n + 1) // 2\n"),
        Candidate(dup, "def has_duplicate(xs):\n    return len(xs) > 2\n"),
        Candidate(mbpp, mbpp.reference[0]),  # MBPP+ inputs deserialised (a tuple second)
    ]
    got = judge(candidates, SandboxConfig(timeout_s=20), workers=2)
    assert [j.status for j in got] == ["passed", "failed", "passed", "failed", "passed"]
    assert "base input 1/3" in got[1].detail
    assert [j.base_passed for j in got] == [True, False, True, False, True]

    plain = {t.task_id: t for t in load_evalperf(BenchSpec("evalperf", bench_file=str(FIXTURE)))}
    again = judge(
        [Candidate(plain["HumanEval/9001"], candidates[2].code)], SandboxConfig(), workers=1
    )
    assert again[0].status == "failed"  # the same sample, judged on pe_input


def test_tests_file_must_cover_every_task():
    spec = BenchSpec("evalperf", bench_file=str(FIXTURE), tests_files=RELEASE[:1])
    with pytest.raises(InputError, match=r"--tests-file .*HumanEvalPlus-evalperf.jsonl: no tests "
                       r"for Mbpp/106 of --bench-file"):  # fmt: skip
        load_evalperf(spec)
    missing = BenchSpec("evalperf", bench_file=str(FIXTURE), tests_files=("nowhere.jsonl",))
    with pytest.raises(InputError, match="--tests-file nowhere.jsonl: no such file"):
        load_evalperf(missing)


# ---------------------------------------------------------------------------------------------
# the cost-per-format figure's numbers (pure): relative costs on the tasks every model solved


def test_cost_table_relative_costs_and_counter_refusal():
    import math

    import pandas as pd

    from reports.figure_data import Skip
    from reports.perf import cost_table

    rows = []
    # task a: follow 100, precede 400; task b: follow 300, precede 300 (two samples: 200, 400);
    # task c: only follow solved it -> left out
    for task, label, cost in [("a", "follow-s0", 100), ("a", "precede-s0", 400),
                              ("b", "follow-s0", 300), ("b", "precede-s0", 200),
                              ("b", "precede-s0", 400), ("c", "follow-s0", 50)]:  # fmt: skip
        rows.append({"bench": "evalperf", "task_id": task, "label": label, "passed": True,
                     "instructions": cost, "perf_counter": "valgrind"})  # fmt: skip
    table = cost_table(pd.DataFrame(rows)).set_index("label")
    # log ratios to the task's geometric mean: a: -+log(2); b: 0 -> geometric means 2^-/+0.5
    assert table.loc["follow-s0", "relative_cost"] == pytest.approx(2**-0.5)
    assert table.loc["precede-s0", "relative_cost"] == pytest.approx(2**0.5)
    assert table.loc["follow-s0", "tasks"] == 2
    assert table.loc["precede-s0", "mean_instructions"] == pytest.approx((400 + 300) / 2)
    assert math.isclose(table.loc["follow-s0", "ci_low"], 0.5)  # resampled tasks: a,a
    mixed = pd.DataFrame(rows).assign(perf_counter=["hw"] + ["valgrind"] * 5)
    with pytest.raises(Skip, match="different counters"):
        cost_table(mixed)
    with pytest.raises(Skip, match="no instruction counts"):
        cost_table(pd.DataFrame(rows).assign(instructions=None))


# ---------------------------------------------------------------------------------------------
# through the sandbox: Valgrind counts (this VM has no PMU), `diag eval --bench evalperf`


def _need_valgrind() -> None:
    if shutil.which("valgrind") is None:
        from conftest import skip_or_fail

        skip_or_fail("Debian valgrind is not installed (apt-get install -y valgrind)")


SAMPLES = [  # sum_to: the closed form (cheaper than every reference but the closed form's
    # equal), the loop (as costly as the slowest reference), a wrong one (not profiled)
    "def sum_to(n):\n    return n * (n + 1) // 2\n",
    "def sum_to(n):\n    total = 0\n    for i in range(n + 1):\n        total += i\n    return total\n",
    "def sum_to(n):\n    return 0\n",
]


@pytest.fixture(scope="module")
def evalperf_run(tmp_path_factory):
    """`diag eval --samples S --bench evalperf --bench-file F --out R` on task sum_to."""
    _need_valgrind()
    from evaluation.run import EvalConfig, main

    root = tmp_path_factory.mktemp("evalperf")
    samples = root / "samples.jsonl"
    samples.write_text(
        "".join(json.dumps({"task_id": "HumanEval/9001", "solution": s}) + "\n" for s in SAMPLES)
    )
    out = root / "run"
    summary = main(
        EvalConfig(
            samples=str(samples),
            bench="evalperf",
            bench_file=str(FIXTURE),
            out=str(out),
            max_tasks=1,
            min_correct=1,
            perf_counter="valgrind",
            label="follow-s0",
            workers=2,
            progress=False,
        )  # fmt: skip
    )
    return out, summary


def test_eval_gives_dps_with_the_counter_named(evalperf_run):
    import pandas as pd

    out, summary = evalperf_run
    assert summary["perf_counter"] == "valgrind"
    assert json.loads((out / "manifest.json").read_text())["perf_counter"] == "valgrind"
    refs = summary["reference_instructions"]["HumanEval/9001"]
    assert len(refs) == 3 and refs[0] > refs[1] > refs[2] > 0  # loop > sum(range) > closed form
    frame = pd.read_parquet(out / "samples.parquet").sort_values("sample")
    assert list(frame["status"]) == ["passed", "passed", "failed"]
    costs = list(frame["instructions"])
    assert costs[0] == refs[2]  # the same closed form as the fastest reference: same count
    assert costs[1] == refs[0]  # the same loop as the slowest reference
    assert pd.isna(costs[2])  # not correct: not profiled
    # by the definition: closed form -> fastest cluster (95, 3/3); loop -> slowest (20, 1/3)
    assert list(frame["dps"][:2]) == [95.0, 20.0]
    assert list(frame["dps_norm"][:2]) == pytest.approx([100.0, 100 / 3])
    assert list(frame["matching_cluster"][:2]) == [2, 0]
    ep = summary["models"][0]["perf"]["evalperf"]
    assert ep["dps"] == pytest.approx((95 + 20) / 2)
    assert ep["dps_norm"] == pytest.approx((100 + 100 / 3) / 2)
    assert (ep["n_tasks_scored"], ep["n_tasks"]) == (1, 1)


def test_two_valgrind_counts_are_identical(evalperf_run):
    """A second, separate sandboxed run of the slowest reference counts exactly what the eval
    run counted for it."""
    _, summary = evalperf_run
    tasks = load_evalperf(BenchSpec("evalperf", bench_file=str(FIXTURE)))
    job = ProfileJob("again", tasks[0].reference[0], "sum_to", tasks[0].pe_args)
    (again,) = profile([job], "valgrind", workers=1)
    assert again.instructions == summary["reference_instructions"]["HumanEval/9001"][0]


def test_report_draws_cost_per_format(evalperf_run, tmp_path):
    from reports.report import build_figures
    from reports.results import ResultSet

    out, _ = evalperf_run
    made, skipped = build_figures(ResultSet.load([str(out)]), only=["cost_per_format"])
    assert "cost_per_format" in made, skipped
    data = made["cost_per_format"].data
    assert list(data["label"]) == ["follow-s0"] and data["relative_cost"].iloc[0] == 1.0
    assert "valgrind counter" in made["cost_per_format"].caption


def test_hw_counter_in_the_sandbox():
    """The hw driver through the sandbox: a count where perf_event_open works; here (no PMU)
    the driver reports the kernel's refusal instead of a number."""
    from evaluation.perf import hw_counter_problem

    code = "def f(n):\n    return sum(range(n))\n"
    (got,) = profile([ProfileJob("hw", code, "f", [1000])], "hw", workers=1)
    problem = hw_counter_problem()
    if problem is None:
        assert got.instructions is not None and got.instructions > 1000, got
    else:
        assert got.instructions is None
        assert got.detail == f"no hardware counter in the sandbox: {problem}"
