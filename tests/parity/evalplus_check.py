"""evalplus 0.3.1's own verdicts for fixture tasks and samples (run under .venv-parity).

    .venv-parity/bin/python tests/parity/evalplus_check.py --dataset humaneval \
        --problems tests/data/evalplus/HumanEvalPlus-fixture.jsonl \
        --samples tests/data/evalplus/humaneval_plus_samples.jsonl [--workers 2]

Prints one JSON object: {"statuses": [[base_status, plus_status], ...] in sample order,
"check_s": seconds spent checking (the ground truth excluded, as evalplus caches it)}.

What evalplus.evaluate does, with evalplus's functions: MBPP+ inputs through
`mbpp_deserialize_inputs`, the expected outputs through `trusted_exec` (record_time=True;
MBPP's output-not-none tasks with output_not_none=True, as `get_groundtruth` is called), each
sample through `untrusted_check` on base and plus inputs with fast_check=True (evaluate's default,
`not test_details`) and the default time limits, the samples spread over a ProcessPoolExecutor
as evaluate spreads `check_correctness`. A sample's program is its `solution`, or the prompt
followed by its `completion`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from concurrent.futures import ProcessPoolExecutor


def _stub_download_modules() -> None:
    # evalplus.data imports its download helpers at import time; the checker never calls them
    # and .venv-parity does not install them, so empty stand-ins let mbpp.py import.
    import importlib.util

    stubs = {"tempdir": {}, "wget": {}, "appdirs": {"user_cache_dir": lambda *a, **k: "/tmp"},
             "datasets": {"load_dataset": None}}  # fmt: skip
    for name, attrs in stubs.items():
        if importlib.util.find_spec(name) is None:
            module = types.ModuleType(name)
            module.__dict__.update(attrs)
            sys.modules[name] = module


def _check(args: tuple) -> list[str]:
    from evalplus.eval import untrusted_check

    dataset, problem, solution, truth = args
    statuses = []
    for kind in ("base", "plus"):
        status, _ = untrusted_check(
            dataset,
            solution,
            problem[kind + "_input"],
            problem["entry_point"],
            expected=truth[kind],
            atol=problem["atol"],
            ref_time=truth[kind + "_time"],
            fast_check=True,
        )
        statuses.append(status)
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", choices=("humaneval", "mbpp"), required=True)
    parser.add_argument("--problems", required=True)
    parser.add_argument("--samples", required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    _stub_download_modules()
    from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS
    from evalplus.gen.util import trusted_exec

    with open(args.problems, encoding="utf-8") as f:
        problems = {p["task_id"]: p for p in map(json.loads, filter(str.strip, f))}
    if args.dataset == "mbpp":
        from evalplus.data.mbpp import mbpp_deserialize_inputs

        for task_id, problem in problems.items():
            for kind in ("base_input", "plus_input"):
                problem[kind] = mbpp_deserialize_inputs(task_id, problem[kind])
    not_none = MBPP_OUTPUT_NOT_NONE_TASKS if args.dataset == "mbpp" else []
    truths = {}
    for task_id, problem in problems.items():
        truth = {}
        for kind in ("base", "plus"):
            truth[kind], truth[kind + "_time"] = trusted_exec(
                problem["prompt"] + problem["canonical_solution"],
                problem[kind + "_input"],
                problem["entry_point"],
                record_time=True,
                output_not_none=problem["entry_point"] in not_none,
            )
        truths[task_id] = truth
    with open(args.samples, encoding="utf-8") as f:
        samples = [json.loads(line) for line in f if line.strip()]
    jobs = []
    for sample in samples:
        problem = problems[sample["task_id"]]
        solution = sample.get("solution") or problem["prompt"] + sample["completion"]
        jobs.append((args.dataset, problem, solution, truths[sample["task_id"]]))
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        statuses = list(pool.map(_check, jobs))
    print(json.dumps({"statuses": statuses, "check_s": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
