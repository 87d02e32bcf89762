"""`diag report`: the paper's figures and tables (plotly HTML + PNG + SVG) and one report.html."""

from __future__ import annotations

import typer

from cli.options import command_from_config

# the command's --help ({figures}: the figure registry, listed when the command is built)
DOC = (
    "Regenerate every figure and table the runs support (one HTML, PNG, SVG and CSV "
    "each) and a report.html with a caption per figure; figures whose inputs are "
    "missing are skipped with the command that makes them.\n\n"
    "Figures (--only NAME):\n\n\b\n{figures}\n\n"
    "Teacher swap (the paper's robustness table): give each teacher's SFT study, e.g. "
    "--teacher-swap gpt-4=studies/gpt-4 --teacher-swap gpt-4o=studies/gpt-4o; the report "
    "gains teacher_swap.md/.csv/_comparisons.csv and a report.html section: pass@1 per format "
    "with CIs under each teacher, precede vs follow (and every pair) with its paired test, "
    "and whether the ordering agrees across teachers. A bare --teacher-swap DIR is named by "
    "the teacher its runs record (eval run -> model's train run -> its triples -> the diag "
    "synth manifest).\n\n"
    "Example: diag report --runs demo_out --out demo_out/report"
)


def register(app: typer.Typer) -> None:
    from reports.figures import FIGURES
    from reports.report import ReportConfig

    listing = "\n".join(f"  {name}: {spec.description}" for name, spec in FIGURES.items())
    command_from_config(
        app,
        "report",
        ReportConfig,
        "reports.report:main",
        required=("runs", "out"),
        doc=DOC.format(figures=listing),
    )
