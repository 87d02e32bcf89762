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
