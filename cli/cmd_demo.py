"""`diag demo`: the whole study on the embedded default (see cli/demo.py)."""

from __future__ import annotations

import typer

from cli.options import command_from_config


def register(app: typer.Typer) -> None:
    from cli.demo import DemoConfig

    command_from_config(
        app,
        "demo",
        DemoConfig,
        "cli.demo:main",
        defaults={"out": "demo_out"},
        doc="""Synthesize, pretrain, train four formats, evaluate, diagnose, report: resumable.

        Example: diag demo --out demo_out --preset default
        """,
    )
