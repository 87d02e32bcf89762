"""`diag attn`: span x span attention mass per layer and head (+ captum span attribution)."""

from __future__ import annotations

import typer

from cli.options import command_from_config

# the command's --help (also the listing of `diag --help`, built without importing it)
DOC = """Attention mass between spans: mass[l,h,P,Q] = mean_{i in P} sum_{j in Q} A[l,h,i,j].

Queries: prompt, cot, code; keys: prompt, cot, code, other (glue+eos) [, sink]: the masses
of a query span sum to 1. Summed inside a hook per layer (no full pattern is kept).
Writes attn.parquet, attn_examples.parquet, summary_attn.parquet (+ attribution*).

Example: diag attn --model runs/follow --model runs/precede --data triples.jsonl
--out runs/attn --attribution --save-patterns 4
"""


def register(app: typer.Typer) -> None:
    from diagnostics.attn import BACKENDS, AttnConfig

    command_from_config(
        app,
        "attn",
        AttnConfig,
        "diagnostics.attn:main",
        help_more={"backend": "; ".join(f"{k}: {v}" for k, v in BACKENDS.items()) + "."},
        doc=DOC,
    )
