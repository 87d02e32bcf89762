"""`diag report`: the paper's figures and tables (plotly HTML + PNG + SVG) and one report.html."""

from __future__ import annotations

import typer

from cli.common import invoke


def register(app: typer.Typer) -> None:
    from reports.figures import FIGURES
    from reports.report import ReportConfig as C

    listing = "\n".join(f"  {name}: {spec.description}" for name, spec in FIGURES.items())

    @app.command(
        "report",
        help=(
            "Regenerate every figure and table the runs support (one HTML, PNG, SVG and CSV "
            "each) and a report.html with a caption per figure; figures whose inputs are "
            "missing are skipped with the command that makes them.\n\n"
            f"Figures (--only NAME):\n\n\b\n{listing}\n\n"
            "Example: diag report --runs demo_out --out demo_out/report"
        ),
    )
    def report(
        runs: list[str] = typer.Option(
            ..., "--runs", help="Run folder, or a folder holding runs (repeat for more)."
        ),
        out: str = typer.Option(..., help="Folder to write (a previous report there is replaced)."),
        only: list[str] = typer.Option(
            [], "--only", help="Make only this figure (repeatable; names listed above)."
        ),
        images: bool = typer.Option(C.images, help="Also write PNG + SVG (needs Chromium)."),
        scale: float = typer.Option(C.scale, help="PNG pixel scale."),
    ) -> None:
        cfg = C(runs=list(runs), out=out, only=list(only), images=images, scale=scale)
        invoke("reports.report:main", cfg)
