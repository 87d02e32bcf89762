"""`diag train`: SFT a base model on triples in one of the four formats."""

from __future__ import annotations

import typer

from cli.options import command_from_config

# the command's --help (also the listing of `diag --help`, built without importing it)
DOC = """Fine-tune on triples rendered as seed | wo | follow | precede (loss on the response).

Example: diag train --data triples.jsonl --format precede --base /tmp/base
--out /tmp/run --max-steps 20 --save-steps 10
"""


def register(app: typer.Typer) -> None:
    from training.sft import TrainConfig

    command_from_config(
        app,
        "train",
        TrainConfig,
        "training.sft:main",
        doc=DOC,
    )
