"""`diag valloss`: validation loss and KL to the base at every checkpoint of training runs.

Example: diag valloss --run runs/follow --run runs/precede --data triples.jsonl --out runs/vl
"""

from __future__ import annotations

import typer

from cli.options import SCORING_REQUIRED, command_from_config

# the command's --help (also the listing of `diag --help`, built without importing it)
DOC = """Loss (all response tokens, cot, code) and KL to the base at every checkpoint.

loss = summed -log p over the span's tokens / their number (token-weighted, like the
training loss), on --split (default val); kl_to_base = mean token KL(p_ckpt || p_base)
over the same tokens (as in diag kl). Steps and loss_tokens_seen from the run's
checkpoints.json; the base is the step-0 row. Writes valloss.parquet (with CIs over
examples), valloss_examples.parquet, manifest.json. Resumable per checkpoint.

Example: diag valloss --run runs/follow --run runs/precede --data triples.jsonl
--out runs/valloss
"""


def register(app: typer.Typer) -> None:
    from diagnostics.valloss import ValLossConfig as C

    command_from_config(
        app,
        "valloss",
        C,
        "diagnostics.valloss:main",
        required=(*SCORING_REQUIRED, "run"),
        doc=DOC,
    )
