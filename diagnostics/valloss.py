"""`diag valloss`: validation loss (overall and per span) and KL to the base at every checkpoint.

    diag valloss --run runs/follow --run runs/precede --data triples.jsonl --out out/valloss

The paper's "learning curve" pair, one row per run x checkpoint x span (all, cot, code):

    loss       = sum_{t in span} -log p_ckpt(y_t | y_<t) / |span tokens|     (token-weighted over
                 all examples: the training loss's definition, on the --split, default val)
    kl_to_base = sum_{t in span} KL_t(p_ckpt || p_base) / |span tokens|      (KL_t as in diag kl;
                 --direction reverse: KL(p_base || p_ckpt))

`all` is every response token (cot + code + glue + EOS: exactly the tokens training puts a loss
on). Checkpoints come from the run's checkpoints.json (`training.modeling.list_checkpoints`),
with `step`, `loss_tokens_seen` and `input_tokens_seen`; with --include-base (default) the base
itself is the step-0 row (loss of the base on the run's format, KL 0). CIs resample examples
(plumbing.stats.bootstrap_ratio). The base is loaded once, checkpoints one at a time.

Outputs in --out: valloss.parquet, valloss_examples.parquet (per example x checkpoint x span
sums), manifest.json. Resumable: one part per checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from diagnostics.common import ModelRef, resolve_format
from diagnostics.forward import DIRECTIONS, score_examples, span_mask
from diagnostics.kl import check_pair, kl_items, prepare_base
from diagnostics.scoring import (
    ExampleCache,
    PairOptions,
    loaded_scorer,
    release_scorers,
    unique_labels,
)
from plumbing import InputError, atomic_write_parquet
from plumbing.runner import (
    MAIN_TABLE,
    Command,
    Plan,
    RunContext,
    Unit,
    UnitResult,
    run_command,
    safe_key,
)
from plumbing.stats import bootstrap_ratio, stats_options

VALLOSS_SPANS = {"all": "response", "cot": "cot", "code": "code"}  # valloss name -> span
VALLOSS_COLUMNS = (
    "label",
    "base",
    "format",
    "seed",
    "step",
    "loss_tokens_seen",
    "input_tokens_seen",
    "span",
    "loss",
    "loss_ci_low",
    "loss_ci_high",
    "kl_to_base",
    "kl_ci_low",
    "kl_ci_high",
    "n_tokens",
    "n_examples",
    "direction",
    "checkpoint",
)


@dataclass
class ValLossConfig(PairOptions):
    """Options of `diag valloss` (shared ones in ScoringOptions and PairOptions)."""

    split: str = "val"  # --help of the field in ScoringOptions
    run: list[str] = field(
        default_factory=list,
        metadata={"help": "Repeatable: a training run folder (diag train --out)."},
    )
    base: str | None = field(
        default=None,
        metadata={"help": "Base model (default: the base the runs were trained from)."},
    )
    direction: str = field(
        default="forward", metadata={"help": "forward: KL(ckpt || base) | reverse."}
    )
    include_base: bool = field(
        default=True, metadata={"help": "Add the base itself as the step-0 row."}
    )


@dataclass
class Checkpoint:
    step: int
    path: Path
    loss_tokens_seen: int | None
    input_tokens_seen: int | None


def run_checkpoints(run_dir: Path) -> list[Checkpoint]:
    """Every checkpoint of a run, with the token counts checkpoints.json recorded."""
    from training.modeling import checkpoint_index, list_checkpoints

    found = list_checkpoints(run_dir)  # InputError when there are none
    by_step = checkpoint_index(run_dir)
    return [
        Checkpoint(
            step,
            path,
            by_step.get(step, {}).get("loss_tokens_seen"),
            by_step.get(step, {}).get("input_tokens_seen"),
        )
        for step, path in found
    ]


def example_sums(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per example and valloss span: n_tokens, nll_sum, kl_sum (kl 0 for the base itself)."""
    rows = []
    for item in items:
        kl = item.get("kl")
        for name, span in VALLOSS_SPANS.items():
            mask = span_mask(item["span"], span)
            if not mask.any():
                continue
            rows.append(
                {
                    "example_id": item["example"].id,
                    "span": name,
                    "n_tokens": int(mask.sum()),
                    "nll_sum": float(item["nll"][mask].sum()),
                    "kl_sum": float(kl[mask].sum()) if kl is not None else 0.0,
                }
            )
    return rows


def curve_rows(examples: Any, opts: Any) -> list[dict[str, Any]]:
    """valloss rows from per-example sums (one group per run x checkpoint x span)."""
    keys = ["label", "step", "span"]
    rows = []
    for _, g in examples.groupby(keys, sort=True):
        n = g["n_tokens"].to_numpy(dtype=np.float64)
        loss = bootstrap_ratio(g["nll_sum"].to_numpy(), n, opts)
        kl = bootstrap_ratio(g["kl_sum"].to_numpy(), n, opts)
        first = g.iloc[0]
        row = {c: first[c] for c in VALLOSS_COLUMNS if c in g.columns and c != "n_tokens"}
        row.update(
            loss=loss.mean,
            loss_ci_low=loss.ci_low,
            loss_ci_high=loss.ci_high,
            kl_to_base=kl.mean,
            kl_ci_low=kl.ci_low,
            kl_ci_high=kl.ci_high,
            n_tokens=int(n.sum()),
            n_examples=len(g),
        )
        rows.append(row)
    return rows


def plan(cfg: ValLossConfig) -> Plan:
    """Units: the base once per format (step 0) and every checkpoint of every run."""
    from training.modeling import has_tokenizer, load_tokenizer

    if cfg.direction not in DIRECTIONS:
        raise InputError(f"--direction {cfg.direction!r}: choose from {', '.join(DIRECTIONS)}")
    if not cfg.run:
        raise InputError("--run: give at least one training run folder")
    runs = []  # (run index, run ref, format, checkpoints)
    for i, run in enumerate(cfg.run):
        run_dir = Path(run)
        if not run_dir.is_dir():
            raise InputError(f"--run {run}: no such directory")
        ckpts = run_checkpoints(run_dir)
        ref = ModelRef.from_path(ckpts[-1].path, "--run")
        ref.step = None  # the run, not its last checkpoint, names the curve
        runs.append((i, ref, resolve_format(ref, cfg.format), ckpts))
    unique_labels([ref for _, ref, _, _ in runs])
    base_ref, base_tok = prepare_base(cfg, [ref for _, ref, _, _ in runs])
    cache = ExampleCache(cfg.data, cfg.split, max_examples=cfg.max_examples, max_len=cfg.max_len)
    units: dict[str, Unit] = {}
    curve = []  # (part key, run ref, checkpoint or None for the base): the rows of each curve
    for i, ref, fmt, ckpts in runs:
        final = Path(cfg.run[i]) / "final"
        for ck in ckpts:
            # a checkpoint saved without its tokenizer uses the run's final one
            tok_dir = ck.path if has_tokenizer(ck.path) or not has_tokenizer(final) else final
            check_pair(ModelRef.from_path(ck.path), load_tokenizer(tok_dir), base_ref, base_tok)
        cache.get(fmt, base_tok)
        for ck in [*([None] if cfg.include_base else []), *ckpts]:
            # the base row depends only on the format: one part shared by runs of that format
            key = f"base-{fmt}" if ck is None else safe_key(f"r{i}", ref.label, f"step{ck.step}")
            units.setdefault(key, Unit(key, (ref, fmt, ck)))
            curve.append((key, ref, ck))
    context = {"runs": runs, "curve": curve, "base": base_ref, "tokenizer": base_tok}
    context["cache"] = cache
    identity = {**cfg.run_key(), "base": str(base_ref.path)}
    return Plan(list(units.values()), identity=identity, context=context)


def run_unit(cfg: ValLossConfig, unit: Unit, ctx: RunContext) -> UnitResult:
    """Per-example sums of one checkpoint (loss and KL to the base), or of the base itself."""
    import pandas as pd

    ref, fmt, ck = unit.data
    context = ctx.plan.context
    base_tok = context["tokenizer"]
    examples = ctx.take(context["cache"].get(fmt, base_tok)[0])
    base = loaded_scorer(ctx, context["base"], cfg, slot="base")
    if ck is None:
        with ctx.manifest.timed("score"):
            items = list(
                score_examples(
                    examples,
                    base,
                    batch_size=cfg.batch_size,
                    pad_token_id=base_tok.pad_token_id,
                    desc=f"base [{fmt}]",
                )
            )
    else:
        scorer = loaded_scorer(ctx, ModelRef.from_path(ck.path), cfg)
        desc = f"valloss {ref.label} step {ck.step}"
        with ctx.manifest.timed("score"):
            items, _ = kl_items(scorer, base, examples, cfg, base_tok, desc, skip_prompt=True)
    return UnitResult({MAIN_TABLE: pd.DataFrame(example_sums(items))})


def summarise(cfg: ValLossConfig, ctx: RunContext) -> dict[str, Any]:
    """valloss.parquet (the curves, with CIs) and valloss_examples.parquet from the parts."""
    import pandas as pd

    context = ctx.plan.context
    base_ref = context["base"]
    frames = []
    for key, ref, ck in context["curve"]:
        part = ctx.parts.read([key])
        part["label"], part["format"], part["seed"] = ref.label, ref.format, ref.seed
        part["base"] = ref.base
        part["step"] = 0 if ck is None else ck.step
        part["loss_tokens_seen"] = 0 if ck is None else ck.loss_tokens_seen
        part["input_tokens_seen"] = 0 if ck is None else ck.input_tokens_seen
        part["direction"] = cfg.direction
        part["checkpoint"] = str(base_ref.path if ck is None else ck.path)
        frames.append(part)
    per_example = pd.concat(frames, ignore_index=True)
    table = pd.DataFrame(curve_rows(per_example, stats_options(cfg)))
    table = table.reindex(columns=list(VALLOSS_COLUMNS))
    table = table.sort_values(["label", "step", "span"], kind="stable").reset_index(drop=True)
    atomic_write_parquet(ctx.out / "valloss.parquet", table)
    atomic_write_parquet(ctx.out / "valloss_examples.parquet", per_example)
    runs = context["runs"]
    ctx.manifest.extra["data_stats"] = context["cache"].stats()
    n_ckpts = sum(len(r[3]) for r in runs)
    print(f"valloss: {len(table)} rows over {n_ckpts} checkpoints -> {ctx.out}")
    return {
        "n_rows": len(table),
        "base": str(base_ref.path),
        "runs": {ref.label: [c.step for c in ckpts] for _, ref, _, ckpts in runs},
        "loss_all": {
            f"{r.label}@{r.step}": round(float(r.loss), 5)
            for r in table.itertuples()
            if r.span == "all"
        },
    }


COMMAND = Command("valloss", plan, run_unit, summarise, finish=release_scorers)


def main(cfg: ValLossConfig) -> dict[str, Any]:
    """Run `diag valloss`; returns the manifest's result summary (--dry-run: the memory
    estimate, each run's last checkpoint beside the base)."""
    if cfg.dry_run:
        from diagnostics.kl import pair_dry_run

        return pair_dry_run("valloss", cfg, cfg.run)
    return run_command(COMMAND, cfg)
