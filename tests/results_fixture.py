"""A real result set for the report and dashboard tests, made by the real `diag` commands.

    info = build_result_set(tiny_runs, tiny_base, triples_file, tmp_root)   # the `results` fixture
    info.roots       [runs root (diag train), results root (everything below)]
    info.missing     {command: why} for producers that are not built; a test that reads one fails
                     (need(info, command)): the producers live in this repository

Under the results root (one folder per command, as a study would lay it out):
    eval-follow, eval-precede   diag eval --all-checkpoints (pass@1 per checkpoint; the tiny model
                                solves nothing, so these are real zeros)
    eval-oracle                 diag eval --samples: the reference code of the test tasks, every
                                fourth one broken on purpose, label `oracle`: a real sandboxed run
                                whose pass@1 is known (not 0), so tables can be checked
    ppl, kl (--save-tokens), valloss, attn (--save-patterns 2 --attribution), gradnorm
    ablate-precede              diag ablate --variants signature (retrains and evaluates inside)
The eval bench is the test triples with a difficulty (easy/medium/hard) added to each, so the
by-difficulty table exists. Built once per session by the `results` fixture (tests/conftest.py).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from conftest import run_diag

DIFFICULTIES = ("easy", "medium", "hard")


@dataclass
class ResultInfo:
    roots: list[Path]
    results: Path
    bench: Path
    missing: dict[str, str] = field(default_factory=dict)
    oracle_pass: dict[str, bool] = field(default_factory=dict)  # task_id -> expected to pass


# one thread per torch process: the machine's cores are shared
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def available_commands() -> set[str]:
    from cli.main import app

    return {c.name for c in app.registered_commands}


def diag(*args: str) -> None:
    """Run one producer of the result set; its failure fails every test that reads the set."""
    run_diag(*args, env=SINGLE_THREAD, timeout=600, check=True)


def _bench_with_difficulty(triples_file: Path, out: Path) -> Path:
    lines = []
    for i, line in enumerate(triples_file.read_text(encoding="utf-8").splitlines()):
        obj = json.loads(line)
        obj.setdefault("meta", {})["difficulty"] = DIFFICULTIES[i % 3]
        lines.append(json.dumps(obj))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def _oracle_samples(bench: Path, out: Path) -> dict[str, bool]:
    """The reference code of each test task; every fourth one (from the second) raises."""
    expected, lines = {}, []
    test_rows = [json.loads(x) for x in bench.read_text(encoding="utf-8").splitlines()]
    test_rows = [r for r in test_rows if (r.get("meta") or {}).get("split") == "test"]
    for i, row in enumerate(test_rows):
        broken = i % 4 == 1
        code = row["code"] + ("\nraise ValueError('broken on purpose')" if broken else "")
        lines.append(json.dumps({"task_id": row["id"], "solution": code}))
        expected[row["id"]] = not broken
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return expected


def need(info: ResultInfo, *commands: str) -> None:
    """Fail the calling test when a producer it reads is not built (said in the message): the
    producers are `diag` commands of this repository, so a missing one is a defect, never a
    reason to skip."""
    import pytest

    gone = [c for c in commands if c in info.missing]
    if gone:
        pytest.fail("; ".join(info.missing[c] for c in gone), pytrace=False)


EVAL_RUNS = ("eval-follow", "eval-precede", "eval-oracle")


def final_pass_at_1(info: ResultInfo) -> dict[str, dict]:
    """Straight from each eval run's pass_at_k.parquet: label -> the row of pass@1 (group all)
    of its last checkpoint (or its only model), the numbers every table must show."""
    import pandas as pd

    out = {}
    for run in EVAL_RUNS:
        pak = pd.read_parquet(info.results / run / "pass_at_k.parquet")
        pak = pak[(pak["k"] == 1) & (pak["group"] == "all")]
        if pak["step"].notna().any():
            pak = pak[pak["step"] == pak["step"].max()]
        assert len(pak) == 1, pak
        out[str(pak["label"].iloc[0])] = pak.iloc[0].to_dict()
    return out


def producer_calls(
    tiny_runs: dict[str, Path], tiny_base: Path, triples_file: Path, bench: Path, results: Path
) -> dict[str, list[list[str]]]:
    """The `diag` calls (argv without `diag`) that make the result set under `results`, by
    command (tests/test_ranks.py reruns some of them on two ranks)."""
    follow, precede = str(tiny_runs["follow"]), str(tiny_runs["precede"])
    data = ["--data", str(triples_file), "--split", "test"]
    return {
        "eval": [
            ["eval", "--model", follow, "--all-checkpoints", "--bench", f"jsonl:{bench}",
             "--split", "test", "--max-new-tokens", "48", "--n-boot", "500", "--no-progress",
             "--out", str(results / "eval-follow")],
            ["eval", "--model", precede, "--all-checkpoints", "--bench", f"jsonl:{bench}",
             "--split", "test", "--max-new-tokens", "48", "--n-boot", "500", "--no-progress",
             "--out", str(results / "eval-precede")],
        ],
        "ppl": [
            ["ppl", "--model", follow, "--model", precede, "--score-format", "follow",
             "--score-format", "precede", *data, "--bootstrap", "500",
             "--out", str(results / "ppl")],
        ],
        "kl": [
            ["kl", "--model", follow, "--model", precede, "--base", str(tiny_base), *data,
             "--save-tokens", "--bootstrap", "500", "--out", str(results / "kl")],
        ],
        "valloss": [
            ["valloss", "--run", follow, "--run", precede, *data, "--bootstrap", "500",
             "--out", str(results / "valloss")],
        ],
        "attn": [
            ["attn", "--model", follow, "--model", precede, *data, "--save-patterns", "2",
             "--attribution", "--n-resamples", "500", "--out", str(results / "attn")],
        ],
        "gradnorm": [
            ["gradnorm", "--model", follow, "--model", precede, *data, "--max-examples", "4",
             "--n-resamples", "500", "--out", str(results / "gradnorm")],
        ],
        "ablate": [
            ["ablate", "--run", precede, "--variants", "signature", "--max-new-tokens", "48",
             "--n-boot", "500", "--n-resamples", "500", "--out", str(results / "ablate-precede")],
        ],
    }  # fmt: skip


def build_result_set(
    tiny_runs: dict[str, Path], tiny_base: Path, triples_file: Path, root: Path
) -> ResultInfo:
    results = root / "results"
    results.mkdir(parents=True, exist_ok=True)
    bench = _bench_with_difficulty(triples_file, root / "bench.jsonl")
    info = ResultInfo(roots=[tiny_runs["follow"].parent, results], results=results, bench=bench)
    have = available_commands()
    plan = producer_calls(tiny_runs, tiny_base, triples_file, bench, results)
    todo: list[list[str]] = []
    for command, calls in plan.items():
        if command not in have:
            info.missing[command] = (
                f"cli/main.py registers no `diag {command}`: its results are missing"
            )
            continue
        todo += calls
    if "eval" in have:
        samples = root / "oracle_samples.jsonl"
        info.oracle_pass = _oracle_samples(bench, samples)
        todo.append(
            ["eval", "--samples", str(samples), "--bench", f"jsonl:{bench}", "--split", "test",
             "--label", "oracle", "--n-boot", "500", "--no-progress",
             "--out", str(results / "eval-oracle")]
        )  # fmt: skip
    # The producers are independent one-thread processes: two at a time use both cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        for done in [pool.submit(diag, *args) for args in todo]:
            done.result()  # a producer's failure fails the set, with its stderr tail
    return info
