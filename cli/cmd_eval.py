"""`diag eval`: generate with a model (or read samples), extract code, run the tests, pass@k.

Example: diag eval --model runs/precede --bench toy --out runs/eval-precede
"""

from __future__ import annotations

from typing import Any

import typer

from cli.options import command_from_config

# the command's --help (also the listing of `diag --help`, built without importing it)
DOC = """Evaluate a model (or pre-generated samples) on a benchmark: pass@k with CIs.

Example: diag eval --model runs/precede --bench toy --out runs/eval-precede

Example: diag eval --model runs/follow --all-checkpoints --bench jsonl:runs/toy/triples.jsonl
--split test --out runs/eval-follow-curve

Example: diag eval --samples samples.jsonl --bench humaneval --out runs/he

Example: diag eval --samples s.jsonl --bench humaneval+ --bench-file HumanEvalPlus.jsonl.gz
--out runs/he-plus   (base and plus pass@k, scored as evalplus 0.3.1 scores them)

Example: diag eval --model runs/precede --bench livecodebench --bench-file test.jsonl --since
2024-08-01 --out runs/lcb

Example: diag eval --samples s.jsonl --bench bigcodebench --bench-file bcb-hard.jsonl --subset
hard --split instruct --out runs/bcb   (tasks whose libraries are not installed are reported as
skipped: install them into the venv with `.venv/bin/pip install <modules>`, e.g. the
BigCodeBench requirements list)

Example: diag eval --samples s.jsonl --bench evalperf --bench-file evalperf.jsonl --out runs/ep
(correct samples profiled on pe_input: DPS and DPS_norm, with the instruction counter named;
--profile adds instruction counts to any benchmark)
"""


def _echo_pass_at_1(summary: dict[str, Any], cfg: Any) -> None:
    for m in summary.get("models", []):  # empty on ranks other than 0 (rank 0 summarises)
        p1 = m["pass_at_k"].get("pass@1", {}).get("value")
        base = (m.get("pass_at_k_base") or {}).get("pass@1", {}).get("value")
        base_text = f" (base tests: {base})" if base is not None else ""
        skipped = m.get("skipped") or {}
        skip_text = ""
        if skipped.get("n_tasks"):
            reasons = "; ".join(sorted(skipped["reasons"]))
            skip_text = f"; {skipped['n_tasks']} tasks skipped ({reasons})"
        perf = m.get("perf") or {}
        if perf.get("evalperf"):
            ep = perf["evalperf"]
            shown = [f"{ep[k]:.1f}" if ep[k] is not None else "-" for k in ("dps", "dps_norm")]
            skip_text += (
                f"; DPS {shown[0]} DPS_norm {shown[1]} on {ep['n_tasks_scored']}/"
                f"{ep['n_tasks']} tasks ({perf['counter']} instruction counts)"
            )
        elif perf:
            skip_text += f"; {perf['n_profiled']} samples profiled ({perf['counter']})"
        typer.echo(
            f"{m['label']} step {m['step']}: pass@1 {p1}{base_text} on {m['n_tasks']} tasks "
            f"({cfg.bench}, {summary['split']}){skip_text} -> {cfg.out}"
        )


def register(app: typer.Typer) -> None:
    from evaluation.benchmarks import bench_help
    from evaluation.run import EvalConfig

    command_from_config(
        app,
        "eval",
        EvalConfig,
        "evaluation.run:main",
        required=("out",),
        help_more={"bench": bench_help() + "."},
        report=_echo_pass_at_1,
        doc=DOC,
    )
