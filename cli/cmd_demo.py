"""`diag demo`: the whole study on the embedded default (see cli/demo.py)."""

from __future__ import annotations

import typer

from cli.options import command_from_config

# the command's --help (also the listing of `diag --help`, built without importing it)
DOC = """Synthesize, pretrain, train four formats, evaluate, diagnose, report: resumable.

Example: diag demo --out demo_out --preset default
"""


def register(app: typer.Typer) -> None:
    from cli.demo import DemoConfig

    command_from_config(
        app,
        "demo",
        DemoConfig,
        "cli.demo:main",
        defaults={"out": "demo_out"},
        doc=DOC,
    )
