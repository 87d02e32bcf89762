"""`diag demo --jobs 2`: steps in their own processes, two at once, each after the steps it reads,
with the threads the plan gives them (cores // jobs; a solo step alone with every core).

    pytest -q tests/test_demo_schedule.py
"""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path

import demo_steps
import pytest

from cli.demo import Progress, Step
from plumbing import InputError


def _step(name: str, out: Path, seconds: float, torch_threads: bool = False, **kw) -> Step:
    run = partial(demo_steps.record, str(out), seconds, torch_threads)
    return Step(name, out, run, weight=1.0, **kw)


def _ran(out: Path) -> dict:
    return json.loads((out / "ran.json").read_text())


def test_two_at_a_time_in_dependency_order_with_planned_threads(tmp_path):
    a, b, c, d = (tmp_path / n for n in "abcd")
    steps = [
        _step("a", a, 1.0, after=()),
        _step("b", b, 1.0, torch_threads=True, after=()),
        _step("c (solo)", c, 0.2, True, after=(a, b), solo=True, priority=0),
        _step("d", d, 0.2, after=(c,)),
    ]
    progress = Progress(steps, jobs=2, logs=tmp_path / "logs")
    timings = progress.run()
    assert set(timings) == {"a", "b", "c (solo)", "d"}
    ra, rb, rc, rd = (_ran(p) for p in (a, b, c, d))
    assert len({ra["pid"], rb["pid"], rc["pid"], rd["pid"], os.getpid()}) == 5
    assert ra["start"] < rb["end"] and rb["start"] < ra["end"]  # a and b overlapped
    assert rc["start"] >= max(ra["end"], rb["end"])  # c read both, and ran alone
    assert rd["start"] >= rc["end"]
    cores = len(os.sched_getaffinity(0))
    shared = max(1, cores // 2)
    assert ra["omp"] == str(shared) and (rb["omp"], rb["torch_threads"]) == (str(shared), shared)
    assert (rc["omp"], rc["torch_threads"]) == (str(cores), cores)
    assert progress.threads == {"a": shared, "b": shared, "c (solo)": cores, "d": shared}
    assert "step " + str(a) + " ran" in (tmp_path / "logs" / "a.log").read_text()
    # a second pass finds every step finished and runs nothing
    again = Progress(steps, jobs=2, logs=tmp_path / "logs")
    assert again.run() == {} and again.done_weight == 4.0


def test_a_failing_step_stops_the_demo_with_its_log_and_bad_input_stays_exit_2(tmp_path):
    ok = tmp_path / "ok"
    steps = [
        Step("breaks", tmp_path / "x", partial(demo_steps.fail, "x"), 1.0, after=()),
        _step("ok", ok, 0.1, after=(tmp_path / "x",)),
    ]
    with pytest.raises(RuntimeError, match="'breaks' failed") as err:
        Progress(steps, jobs=2, logs=tmp_path / "logs").run()
    assert "ValueError: step x broke" in str(err.value) and "about to fail" in str(err.value)
    assert not ok.exists()  # never started: it reads the failed step
    bad = [Step("reads", tmp_path / "y", partial(demo_steps.bad_input, "data"), 1.0, after=())]
    with pytest.raises(InputError, match=r"'reads': data/x.jsonl:3: field 'code' missing"):
        Progress(bad, jobs=2, logs=tmp_path / "logs").run()
