"""`diag gradnorm`: gradient norm of each span's mean NLL, per example (and per layer)."""

from __future__ import annotations

import typer

from cli.options import command_from_config

# the command's --help (also the listing of `diag --help`, built without importing it)
DOC = """Gradient norm per span: ||d L_S / d theta||, L_S = mean NLL over the span's tokens.

Per example, for cot, code and the whole response; global and per parameter group
(embed, layer.<i>, head, other). Writes gradnorm.parquet and summary_gradnorm.parquet.

Example: diag gradnorm --model runs/follow --model runs/precede --data triples.jsonl
--out runs/gradnorm --max-examples 50
"""


def register(app: typer.Typer) -> None:
    from diagnostics.gradnorm import GradNormConfig

    command_from_config(
        app,
        "gradnorm",
        GradNormConfig,
        "diagnostics.gradnorm:main",
        doc=DOC,
    )
