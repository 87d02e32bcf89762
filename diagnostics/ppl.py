"""`diag ppl`: conditional perplexity of each response span under teacher forcing.

    diag ppl --model runs/follow --model runs/precede --data triples.jsonl --out out/ppl
    diag ppl --model runs/follow --score-format precede ...   # also score follow on precede text

Definition (docs/DESIGN.md, "ppl"): for a span S of the response,

    PPL(S | prefix) = exp( -(1/|S|) * sum_{t in S} log p(y_t | y_<t) )

with everything before S as the prefix (teacher forcing). In `follow` that gives PPL(cot | prompt)
and PPL(code | prompt, cot); in `precede`, PPL(code | prompt) and PPL(cot | prompt, code). All
spans come from ONE forward pass per example (diagnostics.forward). Reported per model x scored
format x example x span:
    span cot, code      the span's tokens (a format without the span, e.g. `wo`, has no cot rows)
    span response       every response token: cot + code + glue (fences, separators) + EOS
    span gap            log PPL(cot) - log PPL(code) (cot MINUS code; ppl = PPL(cot)/PPL(code);
                        n_tokens = both spans' tokens; nll_sum NaN), only where both spans exist
Columns: n_tokens, nll_sum (sum of -log p, nats), log_ppl (= nll_sum / n_tokens), ppl.

Formats: `--format` is the text format a model is scored on (default: the format it was trained
on; required for a base model); each `--score-format` adds another (cross-order scoring: a
`follow` model on `precede` text). The `format` column is always the TRAINING format, and
`score_format` the text's.

Outputs in --out: ppl.parquet, ppl_summary.parquet (per label x step x score_format x span: mean
log-PPL over examples with a bootstrap CI, the geometric-mean PPL, and the corpus PPL
exp(sum nll / sum tokens)), summary_ppl.parquet (paired differences of log-PPL between every two
conditions per span, with CI and a paired test; seeds of one format pooled when several are
given), manifest.json. Resumable: one part per model x score format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diagnostics.common import resolve_format
from diagnostics.forward import score_examples, span_mask
from diagnostics.scoring import (
    ExampleCache,
    ScoringOptions,
    add_condition,
    loaded_scorer,
    pairwise_summary,
    part_name,
    release_scorers,
    resolve_refs,
)
from plumbing import atomic_write_parquet
from plumbing.runner import MAIN_TABLE, Command, Plan, RunContext, Unit, UnitResult, run_command
from plumbing.stats import mean_table, stats_options, summary_frame
from training.formats import check_format

PPL_SPANS = ("cot", "code", "response")
SUMMARY_SPANS = ("cot", "code", "response", "gap")
PPL_COLUMNS = (
    "label",
    "base",
    "format",
    "score_format",
    "seed",
    "step",
    "example_id",
    "span",
    "n_tokens",
    "nll_sum",
    "log_ppl",
    "ppl",
)


@dataclass
class PplConfig(ScoringOptions):
    """Options of `diag ppl` (shared ones in ScoringOptions; the CLI maps flags onto fields)."""

    model: list[str] = field(default_factory=list)  # model dirs or run dirs (repeatable)
    score_format: list[str] = field(
        default_factory=list,
        metadata={"help": "Repeatable: also score on this format's text (cross-order scoring)."},
    )


def example_rows(item: dict[str, Any]) -> list[dict[str, Any]]:
    """ppl rows (without model columns) of one example's per-position scores."""
    rows = []
    by_span: dict[str, float] = {}
    counts: dict[str, int] = {}
    for span in PPL_SPANS:
        mask = span_mask(item["span"], span)
        n = int(mask.sum())
        if n == 0:
            continue
        nll_sum = float(item["nll"][mask].sum())
        log_ppl = nll_sum / n
        by_span[span], counts[span] = log_ppl, n
        rows.append(
            {
                "span": span,
                "n_tokens": n,
                "nll_sum": nll_sum,
                "log_ppl": log_ppl,
                "ppl": math.exp(log_ppl),
            }
        )
    if "cot" in by_span and "code" in by_span:
        gap = by_span["cot"] - by_span["code"]
        n = counts["cot"] + counts["code"]
        rows.append(
            {
                "span": "gap",
                "n_tokens": n,
                "nll_sum": math.nan,
                "log_ppl": gap,
                "ppl": math.exp(gap),
            }
        )
    example_id = item["example"].id
    for row in rows:
        row["example_id"] = example_id
    return rows


def score_model(
    scorer: Any, examples: list[Any], *, batch_size: int, pad_token_id: int, desc: str = "ppl"
) -> list[dict[str, Any]]:
    """ppl rows for one loaded model over encoded examples (one forward pass per batch)."""
    rows: list[dict[str, Any]] = []
    for item in score_examples(
        examples, scorer, batch_size=batch_size, pad_token_id=pad_token_id, desc=desc
    ):
        rows.extend(example_rows(item))
    return rows


def summarize(frame: Any, opts: Any) -> tuple[Any, Any]:
    """(ppl_summary, summary_ppl) tables from ppl rows."""
    keys = ["label", "format", "seed", "step", "score_format", "span"]
    table = mean_table(frame, value="log_ppl", by=keys, opts=opts)
    table = table.rename(columns={"mean": "mean_log_ppl"})
    table["ppl"] = np.exp(table["mean_log_ppl"])
    spans = frame[frame["span"] != "gap"]
    corpus = spans.groupby(keys, dropna=False, sort=True)[["nll_sum", "n_tokens"]].sum()
    corpus = (corpus["nll_sum"] / corpus["n_tokens"]).map(math.exp).rename("corpus_ppl")
    table = table.merge(corpus.reset_index(), on=keys, how="left")
    rows = pairwise_summary(
        add_condition(frame, with_score_format=True),
        value="log_ppl",
        spans=SUMMARY_SPANS,
        opts=opts,
        group_cols=["score_format"],
    )
    return table, summary_frame(rows)


def plan(cfg: PplConfig) -> Plan:
    """Units: one per model x scored format; every model, tokenizer and format checked here."""
    from training.modeling import load_tokenizer

    extra = [check_format(f) for f in cfg.score_format]
    if cfg.format:
        check_format(cfg.format)
    refs = resolve_refs(cfg.model)
    cache = ExampleCache(cfg.data, cfg.split, max_examples=cfg.max_examples, max_len=cfg.max_len)
    units = []
    for i, ref in enumerate(refs):
        tokenizer = load_tokenizer(ref.path)
        for fmt in dict.fromkeys([resolve_format(ref, cfg.format), *extra]):
            cache.get(fmt, tokenizer)
            units.append(Unit(part_name(i, ref, fmt), (ref, tokenizer, fmt)))
    return Plan(units, identity=cfg.run_key(), context={"refs": refs, "cache": cache})


def run_unit(cfg: PplConfig, unit: Unit, ctx: RunContext) -> UnitResult:
    """ppl rows of one model on one format's text (the model stays loaded for its next format)."""
    import pandas as pd

    ref, tokenizer, fmt = unit.data
    scorer = loaded_scorer(ctx, ref, cfg)
    examples = ctx.take(ctx.plan.context["cache"].get(fmt, tokenizer)[0])
    with ctx.manifest.timed("score"):
        rows = score_model(
            scorer,
            examples,
            batch_size=cfg.batch_size,
            pad_token_id=tokenizer.pad_token_id,
            desc=f"ppl {ref.label} [{fmt}]",
        )
    frame = pd.DataFrame(rows).assign(**ref.columns(), score_format=fmt)
    return UnitResult({MAIN_TABLE: frame.reindex(columns=list(PPL_COLUMNS))}, {"mode": scorer.mode})


def summarise(cfg: PplConfig, ctx: RunContext) -> dict[str, Any]:
    """ppl.parquet, ppl_summary.parquet and summary_ppl.parquet from the parts."""
    frame = ctx.parts.read([u.key for u in ctx.plan.units])
    table, summary = summarize(frame, stats_options(cfg))
    atomic_write_parquet(ctx.out / "ppl.parquet", frame)
    atomic_write_parquet(ctx.out / "ppl_summary.parquet", table)
    atomic_write_parquet(ctx.out / "summary_ppl.parquet", summary)
    refs = ctx.plan.context["refs"]
    ctx.manifest.extra["scoring_mode"] = {
        u.data[0].label: ctx.parts.meta(u.key).get("mode") for u in ctx.plan.units
    }
    ctx.manifest.extra["data_stats"] = ctx.plan.context["cache"].stats()
    print(f"ppl: {len(frame)} rows for {len(refs)} model(s) -> {ctx.out}")
    return {
        "n_rows": len(frame),
        "models": [{"label": r.label, "path": str(r.path), "step": r.step} for r in refs],
        "mean_log_ppl": {
            f"{r.label}[{r.score_format}]:{r.span}": round(float(r.mean_log_ppl), 5)
            for r in table.itertuples()
        },
    }


COMMAND = Command("ppl", plan, run_unit, summarise, finish=release_scorers)


def main(cfg: PplConfig) -> dict[str, Any]:
    """Run `diag ppl`; returns the manifest's result summary (--dry-run: the memory estimate)."""
    if cfg.dry_run:
        from training.memory import dry_run

        return dry_run(
            "ppl",
            cfg.model,
            dtype=cfg.dtype,
            batch=cfg.batch_size,
            max_len=cfg.max_len,
            chunk_tokens=cfg.chunk_tokens,
        )
    return run_command(COMMAND, cfg)
