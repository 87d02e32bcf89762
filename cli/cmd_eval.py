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
"""


def _echo_pass_at_1(summary: dict[str, Any], cfg: Any) -> None:
    for m in summary["models"]:
        p1 = m["pass_at_k"].get("pass@1", {}).get("value")
        typer.echo(
            f"{m['label']} step {m['step']}: pass@1 {p1} on {m['n_tasks']} tasks "
            f"({cfg.bench}, {summary['split']}) -> {cfg.out}"
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
