"""`diag ablate`: retrain on AST-ablated training data with the same budget; curves vs unablated."""

from __future__ import annotations

import typer

from cli.options import command_from_config

# the command's --help (also the listing of `diag --help`, built without importing it)
DOC = """Ablate the training data (AST transforms), retrain each variant with the unablated
run's own settings, evaluate every checkpoint, and write pass@1 curves
(ablate_curves.parquet, variant 'none' = the unablated run).

Example: diag ablate --run runs/precede --variants signature,comments --out runs/abl

Example: diag ablate --run runs/precede --variants signature --out x --dry-run
"""


def register(app: typer.Typer) -> None:
    from diagnostics.ablate import AblateConfig
    from diagnostics.transforms import describe

    command_from_config(
        app,
        "ablate",
        AblateConfig,
        "diagnostics.ablate:main",
        help_more={"variants": describe() + "."},
        doc=DOC,
    )
