"""`diag demo`: the whole study on the embedded default (see cli/demo.py)."""

from __future__ import annotations

import typer

from cli.common import invoke


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        out: str = typer.Option("demo_out", help="Folder for every step's run folder."),
        preset: str = typer.Option(
            "default", help="quick (smoke, <= 3 min) | default (<= 15 min) | full (replication)."
        ),
        seeds: int = typer.Option(None, help="Seeds per format (default: the preset's)."),
        formats: str = typer.Option(None, help="Comma-separated subset of the four formats."),
        cache: str = typer.Option(None, help="Cache of pretrained bases (default ~/.cache)."),
        overwrite: bool = typer.Option(False, help="Start from scratch in --out."),
    ) -> None:
        """Synthesize, pretrain, train four formats, evaluate, diagnose, report: resumable.

        Example: diag demo --out demo_out --preset default
        """
        from cli.demo import DemoConfig

        cfg = DemoConfig(
            out=out,
            preset=preset,
            seeds=seeds,
            formats=[f.strip() for f in formats.split(",")] if formats else None,
            cache=cache,
            overwrite=overwrite,
        )
        invoke("cli.demo:main", cfg)
