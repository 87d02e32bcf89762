"""`diag kl`: token-level KL from each fine-tuned model to its base, on identical token ids.

    diag kl --model runs/follow --model runs/precede --data triples.jsonl --out out/kl
    diag kl --model runs/precede --base runs/base --direction reverse --save-tokens ...

Definition: at every position t of a sequence (teacher forcing, the model's own format),

    KL_t(p_ft || p_base) = sum_{v < V} p_ft(v | y_<t) * (log p_ft(v | y_<t) - log p_base(v | y_<t))

(`--direction reverse`: KL(p_base || p_ft)), where position t's distributions are those that
predict token t, and V is the common vocabulary: the heads are sliced to
V = min(vocab_ft, vocab_base) and each distribution renormalised over ids < V (the mass a larger,
resized head puts beyond V is measured: manifest `vocab`), and the tokenizer must fit inside V.
Tokenizers must be identical (vocabulary, merges, specials: checked before anything runs).
Computed in fp32 in row chunks (diagnostics.forward): no [tokens, vocab] tensor for a batch.

Reduced per model x example x span (prompt, cot, code, response = every response token):
n_tokens, kl_mean and the within-example distribution (kl_q10, kl_q50, kl_q90, kl_max), with
nll_mean / nll_base_mean (-log p of the actual token under each model).

Outputs in --out: kl.parquet, kl_summary.parquet (per model x span: mean over examples of
kl_mean with a bootstrap CI, the token-weighted mean and pooled token quantiles),
summary_kl.parquet (paired differences between models per span: CI and paired test),
kl_tokens.parquet with --save-tokens (one row per token: text, KL, NLL), manifest.json.
The base is loaded once; fine-tuned models one at a time. Resumable: one part per model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from diagnostics.common import ModelRef, check_same_tokenizer, resolve_format
from diagnostics.forward import (
    DIRECTIONS,
    common_vocab,
    score_examples,
    span_mask,
)
from diagnostics.scoring import (
    ExampleCache,
    PairOptions,
    add_condition,
    loaded_scorer,
    pairwise_summary,
    part_name,
    release_scorers,
    resolve_refs,
)
from plumbing import InputError, atomic_write_parquet
from plumbing.runner import (
    ITEM_COLUMN,
    MAIN_TABLE,
    Command,
    Plan,
    RunContext,
    Unit,
    UnitResult,
    run_command,
)
from plumbing.stats import mean_table, stats_options, summary_frame
from training.formats import SPAN_NAMES

KL_SPANS = ("prompt", "cot", "code", "response")
KL_COLUMNS = (
    "label",
    "base",
    "format",
    "seed",
    "step",
    "example_id",
    "span",
    "n_tokens",
    "kl_mean",
    "kl_q10",
    "kl_q50",
    "kl_q90",
    "kl_max",
    "nll_mean",
    "nll_base_mean",
    "direction",
)
TOKEN_COLUMNS = (
    "label",
    "base",
    "format",
    "seed",
    "step",
    "example_id",
    "pos",
    "token",
    "token_id",
    "span",
    "kl",
    "nll",
    "nll_base",
    "direction",
)


@dataclass
class KlConfig(PairOptions):
    """Options of `diag kl` (shared ones in ScoringOptions and PairOptions)."""

    model: list[str] = field(
        default_factory=list,
        metadata={"help": "Repeatable: fine-tuned model, run dir or checkpoint."},
    )
    base: str | None = field(
        default=None,
        metadata={"help": "Base model (default: the base the models were trained from)."},
    )
    direction: str = field(
        default="forward",
        metadata={"help": "forward: KL(ft || base) | reverse: KL(base || ft)."},
    )
    save_tokens: bool = field(
        default=False, metadata={"help": "Also write kl_tokens.parquet (per token)."}
    )


def recorded_base(refs: list[ModelRef]) -> str:
    """The base model named in the training manifests of `refs` (all must agree)."""
    bases = set()
    for ref in refs:
        data: dict[str, Any] = {}
        if ref.run_dir is not None:
            data = json.loads((ref.run_dir / "manifest.json").read_text(encoding="utf-8"))
        base = data.get("base") or data.get("config", {}).get("base")
        if not base:
            raise InputError(
                f"--model {ref.path}: no training manifest names its base; pass --base"
            )
        bases.add(str(Path(base).resolve()))
    if len(bases) > 1:
        raise InputError(f"--model: the models were trained from different bases {sorted(bases)}")
    return bases.pop()


def check_pair(ref: ModelRef, tokenizer: Any, base_ref: ModelRef, base_tokenizer: Any) -> None:
    """Identical tokenizers, and a tokenizer that fits both models' vocabularies (config only)."""
    from transformers import AutoConfig

    check_same_tokenizer(
        tokenizer, base_tokenizer, f"--model {ref.path}", f"--base {base_ref.path}"
    )
    for r in (ref, base_ref):
        vocab = AutoConfig.from_pretrained(str(r.path), local_files_only=True).get_text_config()
        if len(tokenizer) > vocab.vocab_size:
            raise InputError(
                f"{r.path}: vocabulary {vocab.vocab_size} is smaller than its tokenizer "
                f"({len(tokenizer)} tokens)"
            )


def span_name_of(span_ids: np.ndarray) -> np.ndarray:
    return np.asarray(SPAN_NAMES, dtype=object)[span_ids]


def linear_quantiles(values: np.ndarray, qs: tuple[float, ...] = (0.1, 0.5, 0.9)) -> list[float]:
    """np.quantile(values, qs) (its default "linear" method, the same arithmetic: the
    difference in the array's dtype, the interpolation in float64), without its per-call
    overhead (~60 us, and it is called for every example x span)."""
    x = np.sort(values)
    n = x.size
    out = []
    for q in qs:
        h = (n - 1) * q
        lo = int(h)
        hi = min(lo + 1, n - 1)
        t = h - lo
        a, b = x[lo], x[hi]
        d = float(b - a)
        out.append(float(b) - d * (1 - t) if t >= 0.5 else float(a) + d * t)
    return out


def example_rows(item: dict[str, Any]) -> list[dict[str, Any]]:
    """kl rows (without model columns) of one example's per-position scores."""
    rows = []
    for span in KL_SPANS:
        mask = span_mask(item["span"], span)
        if not mask.any():
            continue
        kl = item["kl"][mask]
        q10, q50, q90 = linear_quantiles(kl)
        rows.append(
            {
                "example_id": item["example"].id,
                "span": span,
                "n_tokens": int(mask.sum()),
                "kl_mean": float(kl.mean()),
                "kl_q10": float(q10),
                "kl_q50": float(q50),
                "kl_q90": float(q90),
                "kl_max": float(kl.max()),
                "nll_mean": float(item["nll"][mask].mean()),
                "nll_base_mean": float(item["nll_base"][mask].mean()),
            }
        )
    return rows


def token_frame(items: list[dict[str, Any]]) -> Any:
    """One row per scored token: example_id, pos, token_id, span, kl, nll, nll_base."""
    import pandas as pd

    if not items:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "example_id": np.concatenate([[it["example"].id] * len(it["pos"]) for it in items]),
            "pos": np.concatenate([it["pos"] for it in items]).astype(np.int64),
            "token_id": np.concatenate([it["token_id"] for it in items]).astype(np.int64),
            "span": span_name_of(np.concatenate([it["span"] for it in items])),
            "kl": np.concatenate([it["kl"] for it in items]),
            "nll": np.concatenate([it["nll"] for it in items]),
            "nll_base": np.concatenate([it["nll_base"] for it in items]),
        }
    )


def token_texts(token_ids: np.ndarray, tokenizer: Any) -> list[str]:
    """Each token decoded on its own (byte-level pieces of a character show as U+FFFD)."""
    unique = np.unique(token_ids).tolist()
    texts = tokenizer.batch_decode([[t] for t in unique], clean_up_tokenization_spaces=False)
    table = dict(zip(unique, texts))
    return [table[t] for t in token_ids.tolist()]


def pooled_token_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per reported span: the distribution of token KL pooled over all examples of one model."""
    if not items:
        return []
    return pooled_rows(
        np.concatenate([it["span"] for it in items]), np.concatenate([it["kl"] for it in items])
    )


def pooled_rows(span_ids: np.ndarray, kl: np.ndarray) -> list[dict[str, Any]]:
    """`pooled_token_rows` from the pooled arrays (span id and KL of every scored token)."""
    rows = []
    for span in KL_SPANS:
        values = kl[span_mask(span_ids, span)]
        if values.size == 0:
            continue
        q = np.quantile(values, [0.1, 0.5, 0.9, 0.99])
        row = {"span": span, "n_tokens": int(values.size), "token_kl_mean": float(values.mean())}
        row.update(zip(("token_q10", "token_q50", "token_q90", "token_q99"), map(float, q)))
        rows.append(row)
    return rows


def summarize(frame: Any, pooled: list[dict[str, Any]], opts: Any) -> tuple[Any, Any]:
    """(kl_summary, summary_kl) from kl rows and the pooled token rows (with model columns)."""
    import pandas as pd

    keys = ["label", "format", "seed", "step", "direction", "span"]
    table = mean_table(frame, value="kl_mean", by=keys, opts=opts).rename(
        columns={"mean": "mean_kl"}
    )
    if pooled:
        pooled_frame = pd.DataFrame(pooled)
        pooled_frame["step"] = pooled_frame["step"].astype(table["step"].dtype)
        # A model without a training format (a plain base dir) has all-NaN key columns
        # on one side (float64) and strings on the other; merge needs one dtype per key.
        for key in ("label", "format", "seed", "direction", "span"):
            table[key] = table[key].astype(object)
            pooled_frame[key] = pooled_frame[key].astype(object)
        table = table.merge(pooled_frame, on=keys, how="left")
    rows = pairwise_summary(
        add_condition(frame, with_score_format=False), value="kl_mean", spans=KL_SPANS, opts=opts
    )
    return table, summary_frame(rows)


def kl_items(
    scorer: Any,
    base: Any,
    examples: list[Any],
    cfg: Any,
    tokenizer: Any,
    desc: str,
    *,
    skip_prompt: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-example items of one model against the base, and the vocabulary-slicing record."""
    vocab = common_vocab(scorer, base, len(tokenizer))
    items = list(
        score_examples(
            examples,
            scorer,
            base,
            batch_size=cfg.batch_size,
            pad_token_id=tokenizer.pad_token_id,
            direction=cfg.direction,
            vocab=vocab,
            skip_prompt=skip_prompt,
            desc=desc,
        )
    )
    dropped = [it["mass_dropped"] for it in items]
    record = {
        "vocab_model": scorer.vocab_size,
        "vocab_base": base.vocab_size,
        "vocab_common": vocab,
        **mass_dropped_record(np.concatenate(dropped) if dropped else np.zeros(0)),
        "scoring_mode": scorer.mode,
    }
    return items, record


def mass_dropped_record(dropped: np.ndarray) -> dict[str, float]:
    """Probability mass outside the common vocabulary, over every scored token (0 unsliced)."""
    if dropped.size == 0:
        return {"mass_dropped_mean": 0.0, "mass_dropped_max": 0.0}
    return {"mass_dropped_mean": float(dropped.mean()), "mass_dropped_max": float(dropped.max())}


POOL_TABLE = "pool"  # a rank's scored tokens (span id, KL, mass dropped): pooled when merged


def pool_frame(items: list[dict[str, Any]]) -> Any:
    """The token arrays the pooled statistics need, one row per scored token (rank parts)."""
    import pandas as pd

    columns = {"example_id": [], "span_id": [], "kl": [], "mass_dropped": []}
    for it in items:
        columns["example_id"].append(np.full(len(it["kl"]), it["example"].id, dtype=object))
        columns["span_id"].append(np.asarray(it["span"], dtype=np.int8))
        columns["kl"].append(it["kl"])
        columns["mass_dropped"].append(it["mass_dropped"])
    empty = {"example_id": object, "span_id": np.int8, "kl": np.float32, "mass_dropped": np.float32}
    return pd.DataFrame(
        {k: np.concatenate(v) if v else np.zeros(0, dtype=empty[k]) for k, v in columns.items()}
    )


def merge_ranks(cfg: Any, unit: Unit, results: list[UnitResult]) -> UnitResult:
    """A unit scored on several ranks: the pooled token statistics and the mass dropped from
    every rank's tokens (in planned order, so as one process would pool them)."""
    import pandas as pd

    pool = pd.concat([r.tables[POOL_TABLE] for r in results], ignore_index=True)
    pool = pool.sort_values(ITEM_COLUMN, kind="stable")
    vocab = {**results[0].meta["vocab"], **mass_dropped_record(pool["mass_dropped"].to_numpy())}
    meta = {
        "vocab": vocab,
        "pooled": pooled_rows(pool["span_id"].to_numpy(), pool["kl"].to_numpy()),
    }
    return UnitResult({POOL_TABLE: None}, meta)


def prepare_base(cfg: Any, refs: list[ModelRef]) -> tuple[ModelRef, Any]:
    from training.modeling import load_tokenizer

    base_ref = ModelRef.from_path(cfg.base or recorded_base(refs), "--base")
    return base_ref, load_tokenizer(base_ref.path, "--base")


def plan(cfg: KlConfig) -> Plan:
    """Units: one per model, each against the one base; tokenizers checked identical here."""
    from training.modeling import load_tokenizer

    if cfg.direction not in DIRECTIONS:
        raise InputError(f"--direction {cfg.direction!r}: choose from {', '.join(DIRECTIONS)}")
    refs = resolve_refs(cfg.model)
    base_ref, base_tok = prepare_base(cfg, refs)
    cache = ExampleCache(cfg.data, cfg.split, max_examples=cfg.max_examples, max_len=cfg.max_len)
    units = []
    for i, ref in enumerate(refs):
        check_pair(ref, load_tokenizer(ref.path), base_ref, base_tok)
        fmt = resolve_format(ref, cfg.format)
        cache.get(fmt, base_tok)
        extra = ("tokens",) if cfg.save_tokens else ()  # a part without them is not done
        units.append(Unit(part_name(i, ref, fmt), (ref, fmt), tables=extra))
    identity = {**cfg.run_key("save_tokens"), "base": str(base_ref.path)}
    context = {"refs": refs, "base": base_ref, "tokenizer": base_tok, "cache": cache}
    return Plan(units, identity=identity, context=context)


def run_unit(cfg: KlConfig, unit: Unit, ctx: RunContext) -> UnitResult:
    """KL rows of one model against the base (kept loaded across models)."""
    import pandas as pd

    ref, fmt = unit.data
    context = ctx.plan.context
    base_tok = context["tokenizer"]
    columns = ref.columns() | {"direction": cfg.direction}
    base = loaded_scorer(ctx, context["base"], cfg, slot="base")
    scorer = loaded_scorer(ctx, ref, cfg)
    examples = ctx.take(context["cache"].get(fmt, base_tok)[0])
    with ctx.manifest.timed("score"):
        items, record = kl_items(scorer, base, examples, cfg, base_tok, f"kl {ref.label} [{fmt}]")
    frame = pd.DataFrame([row for it in items for row in example_rows(it)]).assign(**columns)
    tables = {MAIN_TABLE: frame.reindex(columns=list(KL_COLUMNS))}
    if cfg.save_tokens:  # one row per token: only when asked (large)
        tables["tokens"] = token_frame(items).assign(**columns)
    if ctx.ranks.active:  # pooled over every rank's tokens when the parts are merged
        tables[POOL_TABLE] = pool_frame(items)
    return UnitResult(tables, {"vocab": record, "pooled": pooled_token_rows(items)})


def summarise(cfg: KlConfig, ctx: RunContext) -> dict[str, Any]:
    """kl.parquet, kl_summary.parquet, summary_kl.parquet (and kl_tokens.parquet) from the parts."""
    context = ctx.plan.context
    keys = [u.key for u in ctx.plan.units]
    vocab_records, pooled = {}, []
    for unit in ctx.plan.units:
        ref, _ = unit.data
        meta = ctx.parts.meta(unit.key)
        vocab_records[ref.label] = meta["vocab"]
        columns = ref.columns() | {"direction": cfg.direction}
        pooled += [row | columns for row in meta["pooled"]]
    frame = ctx.parts.read(keys)
    table, summary = summarize(frame, pooled, stats_options(cfg))
    atomic_write_parquet(ctx.out / "kl.parquet", frame)
    atomic_write_parquet(ctx.out / "kl_summary.parquet", table)
    atomic_write_parquet(ctx.out / "summary_kl.parquet", summary)
    outputs = ["kl.parquet", "kl_summary.parquet", "summary_kl.parquet"]
    if cfg.save_tokens:
        tokens = ctx.parts.read(keys, "tokens")
        tokens["token"] = token_texts(tokens["token_id"].to_numpy(), context["tokenizer"])
        atomic_write_parquet(
            ctx.out / "kl_tokens.parquet", tokens.reindex(columns=list(TOKEN_COLUMNS))
        )
        outputs.append("kl_tokens.parquet")
    base_ref, refs = context["base"], context["refs"]
    ctx.manifest.extra.update(
        outputs=outputs, vocab=vocab_records, data_stats=context["cache"].stats()
    )
    print(f"kl: {len(frame)} rows for {len(refs)} model(s) against {base_ref.path} -> {ctx.out}")
    return {
        "n_rows": len(frame),
        "base": str(base_ref.path),
        "direction": cfg.direction,
        "models": [{"label": r.label, "path": str(r.path), "step": r.step} for r in refs],
        "mean_kl": {
            f"{r.label}:{r.span}": round(float(r.mean_kl), 6)
            for r in table.itertuples()
            if r.span == "response"
        },
    }


COMMAND = Command("kl", plan, run_unit, summarise, finish=release_scorers, merge=merge_ranks)


def main(cfg: KlConfig) -> dict[str, Any]:
    """Run `diag kl`; returns the manifest's result summary (--dry-run: the memory estimate)."""
    if cfg.dry_run:
        return pair_dry_run("kl", cfg, cfg.model)
    return run_command(COMMAND, cfg)


def pair_dry_run(command: str, cfg: Any, models: list[str]) -> dict[str, Any]:
    """--dry-run of kl and valloss: each model with its base resident beside it."""
    from training.memory import dry_run

    refs = [ModelRef.from_path(m) for m in models]
    return dry_run(
        command,
        models,
        dtype=cfg.dtype,
        batch=cfg.batch_size,
        max_len=cfg.max_len,
        base=cfg.base or recorded_base(refs),
        chunk_tokens=cfg.chunk_tokens,
    )
