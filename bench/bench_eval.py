"""HumanEval+/MBPP+ scoring throughput: ours (evaluation.judge in the sandbox) vs evalplus 0.3.1.

    .venv/bin/python bench/bench_eval.py                      # 1,000 samples, evalplus's workers
    .venv/bin/python bench/bench_eval.py --n 200 --workers 2
    make bench-eval                                           # needs `make parity`

The samples are the fixture samples of tests/data/evalplus (HumanEval+ and MBPP+ alike, half
each), tiled to --n, less the ones that hang or run into a per-input time limit: those cost the
same seconds of waiting on both sides and would only measure the clock. Both harnesses score
the same samples against the same fixture tasks with the same worker count (default: evalplus's
own, cpu_count // 2), and must agree sample by sample on (base, plus).

Baseline: tests/parity/evalplus_check.py under .venv-parity, i.e. evalplus's `untrusted_check`
(fast_check=True, base then plus, one forked process each) over a ProcessPoolExecutor, as
`evalplus.evaluate` runs `check_correctness`; its clock covers the checking. Ours: `diag eval
--samples S --bench humaneval+|mbpp+ --bench-file F` as a user runs it, with the tasks' own
sandbox overrides (fork_server=True, see evaluation/bench_evalplus.py); its clock is the
command's own scoring time (summary.json timings.eval_seconds: the judge), and the command's
wall time is printed beside it. Expected outputs are excluded on both sides (both harnesses
cache them: ours are computed by the first run of the command and cached per file digest). Prints samples/s for each, the ratio ours /
evalplus (target >= 1.0) and the sandbox seconds per checked input.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from evaluation.benchmarks import BenchSpec, load_tasks  # noqa: E402

DATA = ROOT / "tests" / "data" / "evalplus"
PARITY_PY = ROOT / ".venv-parity" / "bin" / "python"
DIAG = Path(sys.executable).with_name("diag")
CHECKER = ROOT / "tests" / "parity" / "evalplus_check.py"
SETS = (
    ("humaneval", DATA / "HumanEvalPlus-fixture.jsonl", DATA / "humaneval_plus_samples.jsonl"),
    ("mbpp", DATA / "MbppPlus-fixture.jsonl", DATA / "mbpp_plus_samples.jsonl"),
)
SLOW_LABELS = ("too slow", "hangs")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _evalplus_status(status: str) -> str:
    return {"passed": "pass", "timeout": "timeout"}.get(status, "fail")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="samples in all (half per set)")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    args = parser.parse_args()
    if not PARITY_PY.exists():
        raise SystemExit("evalplus is not installed in .venv-parity: run `make parity`")
    os.environ.setdefault("CODECOT_CACHE_DIR", tempfile.mkdtemp(prefix="bench-eval-cache-"))
    totals = {"evalplus": 0.0, "ours": 0.0, "ours_wall": 0.0, "samples": 0, "inputs": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for dataset, problems, samples_file in SETS:
            fast = [r for r in _rows(samples_file) if not r["label"].startswith(SLOW_LABELS)]
            count = args.n // len(SETS)
            tiled = [fast[i % len(fast)] for i in range(count)]
            path = Path(tmp) / f"{dataset}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in tiled))
            rows = {r["task_id"]: r for r in _rows(problems)}
            totals["inputs"] += sum(
                len(rows[r["task_id"]]["base_input"]) + len(rows[r["task_id"]]["plus_input"])
                for r in tiled
            )
            proc = subprocess.run(
                [str(PARITY_PY), str(CHECKER), "--dataset", dataset, "--problems", str(problems),
                 "--samples", str(path), "--workers", str(args.workers)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            theirs = json.loads(proc.stdout)
            load_tasks(BenchSpec(f"{dataset}+", str(problems)))  # expected outputs, cached
            # ours: `diag eval --samples` itself; its own scoring clock (the judge, as evalplus's
            # check_s is its checking), and the command's wall time beside it
            out = Path(tmp) / f"eval-{dataset}"
            start = time.perf_counter()
            subprocess.run(
                [str(DIAG), "eval", "--samples", str(path), "--bench", f"{dataset}+",
                 "--bench-file", str(problems), "--workers", str(args.workers), "--out", str(out),
                 "--no-progress", "--allow-missing"],  # the slow samples are left out
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            totals["ours_wall"] += time.perf_counter() - start
            summary = json.loads((out / "summary.json").read_text())
            totals["ours"] += summary["models"][0]["timings"]["eval_seconds"]
            frame = pd.read_parquet(out / "samples.parquet").sort_values(["task_id", "sample"])
            order = {(t, s): i for i, (t, s) in enumerate(frame[["task_id", "sample"]].values)}
            seen: dict[str, int] = {}
            ours = []
            for r in tiled:  # the samples file's order: (task_id, n-th sample of that task)
                k = seen[r["task_id"]] = seen.get(r["task_id"], -1) + 1
                row = frame.iloc[order[(r["task_id"], k)]]
                ours.append(
                    [_evalplus_status(row["base_status"]), _evalplus_status(row["plus_status"])]
                )
            if ours != theirs["statuses"]:
                raise SystemExit(f"{dataset}: verdicts differ from evalplus's")
            totals["evalplus"] += theirs["check_s"]
            totals["samples"] += len(tiled)
            print(
                f"{dataset}: {len(tiled)} samples, evalplus {theirs['check_s']:.1f}s, ours "
                f"{summary['models'][0]['timings']['eval_seconds']:.1f}s, "
                f"verdicts identical",
                flush=True,
            )
    n = totals["samples"]
    rate = {k: n / totals[k] for k in ("evalplus", "ours")}
    print(f"workers {args.workers}, {n} samples, {totals['inputs']} inputs checked per harness")
    for key in ("evalplus", "ours"):
        print(
            f"  {key:8s} {totals[key]:7.1f}s  {rate[key]:7.1f} samples/s  "
            f"{1000 * totals[key] * args.workers / totals['inputs']:.2f} ms per input (x workers)"
        )
    print(
        f"  diag eval wall time (process start, loading, expected outputs cached, writing the "
        f"tables): {totals['ours_wall']:.1f}s"
    )
    print(f"ratio ours/evalplus: {rate['ours'] / rate['evalplus']:.2f}x (target >= 1.0)")


if __name__ == "__main__":
    main()
