"""`diag kl`: token-level KL from fine-tuned models to their base, per span.

Example: diag kl --model runs/follow --model runs/precede --data triples.jsonl --out runs/kl
"""

from __future__ import annotations

import typer

from cli.options import SCORING_REQUIRED, command_from_config

# the command's --help (also the listing of `diag --help`, built without importing it)
DOC = """Token-level KL(p_ft || p_base) on identical token ids, reduced per span and example.

KL_t = sum_v p_ft(v|y_<t) (log p_ft(v|y_<t) - log p_base(v|y_<t)) over the common
vocabulary (heads sliced to min(vocab_ft, vocab_base), renormalised), fp32, in row
chunks; --direction reverse gives KL(p_base || p_ft). Tokenizers must be identical.
Writes kl.parquet (mean and quantiles per example x span), kl_summary.parquet,
summary_kl.parquet (paired differences, CIs, tests), kl_tokens.parquet with
--save-tokens, manifest.json. Validation loss over checkpoints: diag valloss.

Example: diag kl --model runs/follow --model runs/precede --base runs/base
--data triples.jsonl --out runs/kl --save-tokens
"""


def register(app: typer.Typer) -> None:
    from diagnostics.kl import KlConfig as C

    command_from_config(
        app,
        "kl",
        C,
        "diagnostics.kl:main",
        required=(*SCORING_REQUIRED, "model"),
        doc=DOC,
    )
