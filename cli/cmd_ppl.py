"""`diag ppl`: conditional perplexity of the cot and code spans (and the whole response).

Example: diag ppl --model runs/follow --model runs/precede --data triples.jsonl --out runs/ppl

Its options are the fields of diagnostics.ppl.PplConfig (the shared ones of ScoringOptions,
listed identically by `diag kl` and `diag valloss`).
"""

from __future__ import annotations

import typer

from cli.options import SCORING_REQUIRED, command_from_config

# the command's --help (also the listing of `diag --help`, built without importing it)
DOC = """Conditional perplexity of each response span under teacher forcing.

PPL(S | prefix) = exp(-(1/|S|) sum_{t in S} log p(y_t | y_<t)): in follow PPL(cot | prompt)
and PPL(code | prompt, cot); in precede PPL(code | prompt) and PPL(cot | prompt, code);
plus the whole response and the gap log PPL(cot) - log PPL(code). One forward pass per
example. Writes ppl.parquet, ppl_summary.parquet (means, CIs), summary_ppl.parquet
(paired differences, CIs, paired tests), manifest.json.

Example: diag ppl --model runs/follow --model runs/precede --score-format follow
--score-format precede --data triples.jsonl --out runs/ppl
"""


def register(app: typer.Typer) -> None:
    from diagnostics.ppl import PplConfig

    command_from_config(
        app,
        "ppl",
        PplConfig,
        "diagnostics.ppl:main",
        required=(*SCORING_REQUIRED, "model"),
        doc=DOC,
    )
