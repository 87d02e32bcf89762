"""bigcodebench 0.2.5's own per-sample statuses for a task file and a samples file, as JSON.

    .venv-parity/bin/python tests/parity/bigcodebench_check.py TASKS.jsonl SAMPLES.jsonl \\
        [--timeout-limit 240] [--no-calibrated] [--workers 2]
    -> {"<sample_id>": "pass" | "fail" | "timeout", ...}

Run by tests/test_bench_bigcodebench.py under .venv-parity (bigcodebench installed without its
dependencies). Each sample goes through bigcodebench's `untrusted_check` with the arguments its
`evaluate` (local execution) passes: the solution built as evaluate builds it (`solution`, or
complete_prompt + `completion`; calibrated: code_prompt + "\\n    pass\\n" first), the limits'
defaults (max_as_limit = max_data_limit = 30*1024, max_stack_limit = 10, min_time_limit = 1),
and as gt_time_limit the ground truth's time, which here is under a second (it only matters
above TIMEOUT_LIMIT). --timeout-limit replaces bigcodebench's TIMEOUT_LIMIT (240 s), so that a
test can afford a hanging sample. Samples carry a `sample_id` (bigcodebench ignores it).
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor

import bigcodebench.eval as bcb_eval

MAX_AS_LIMIT = MAX_DATA_LIMIT = 30 * 1024
MAX_STACK_LIMIT = 10
MIN_TIME_LIMIT = 1.0
GT_TIME_LIMIT = 1.0


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def check(args: tuple[str, str, str, float]) -> str:
    solution, test, entry_point, timeout_limit = args
    bcb_eval.TIMEOUT_LIMIT = timeout_limit  # read by untrusted_check from its module
    status, _ = bcb_eval.untrusted_check(
        solution,
        test,
        entry_point,
        MAX_AS_LIMIT,
        MAX_DATA_LIMIT,
        MAX_STACK_LIMIT,
        MIN_TIME_LIMIT,
        GT_TIME_LIMIT,
    )
    return status


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tasks")
    parser.add_argument("samples")
    parser.add_argument("--timeout-limit", type=float, default=240.0)
    parser.add_argument("--no-calibrated", dest="calibrated", action="store_false")
    parser.add_argument("--workers", type=int, default=2)
    opts = parser.parse_args()
    # reliability_guard imports these in every checked process: import them once here, before
    # the forks, so start-up does not eat into the one second between its alarm and its join
    import matplotlib.pyplot  # noqa: F401
    import pandas  # noqa: F401

    problems = {t["task_id"]: t for t in read_jsonl(opts.tasks)}
    ids, jobs = [], []
    for sample in read_jsonl(opts.samples):
        problem = problems[sample["task_id"]]
        if "solution" in sample:
            solution = sample["solution"]
        else:
            solution = problem["complete_prompt"] + sample["completion"]
        if opts.calibrated:
            solution = problem["code_prompt"] + "\n    pass\n" + solution
        ids.append(sample["sample_id"])
        jobs.append((solution, problem["test"], problem["entry_point"], opts.timeout_limit))
    with ProcessPoolExecutor(max_workers=opts.workers) as pool:
        statuses = list(pool.map(check, jobs))
    json.dump(dict(zip(ids, statuses)), sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
