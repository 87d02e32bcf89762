"""The replication table: the paper's question answered from a study's result files.

    python -m reports.replication --runs demo_out --out demo_out/summary   # (diag demo step 6)

Reads (via reports.results) the eval samples, ppl, kl and attn tables of every run under
`--runs` and writes, for each format pooled over its seeds:
- pass@1 on each split at the last evaluated step, with a bootstrap CI over tasks (each task's
  pass averaged over seeds first), the seeds used, and the task count;
- every pairwise format comparison of pass@1 (paired over tasks, seeds pooled as in
  `plumbing.stats.compare_pooled`, `average` pooling; Wilcoxon signed-rank p-value);
- the same on the test split **token-matched**: CoT formats see more loss tokens per step, so
  every run is also read at its checkpoint whose `loss_tokens_seen` is nearest the smallest
  final budget among the runs (metric `pass@1:tokens`; the steps used are in the markdown);
- the diagnostics' headline numbers with CIs over examples: mean log-PPL of cot and code and
  their gap (cot minus code), mean KL to base per span, attention mass cot->code and code->cot
  (mean over layers and heads of each example's span mass).
Outputs: `replication.parquet` (metric, format, split, mean, ci_low, ci_high, n, seeds),
`comparisons.parquet` (the summary_* columns), `replication.md` (the README table), and
`manifest.json`. When the runs hold models fine-tuned from several base models, all of the
above is computed within each base (formats are compared only to formats of the same base):
both parquet files gain a first column `base` and replication.md has one section per base.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plumbing import InputError, Manifest, atomic_write_parquet, atomic_write_text

FORMAT_ORDER = ("precede", "wo", "seed", "follow", "base")
PAPER_ORDER = "precede > wo > seed > follow"


@dataclass
class ReplicationConfig:
    """runs: result folders (searched recursively); out: folder to write; n_resamples,
    confidence, stats_seed: the bootstrap; test: the paired test (wilcoxon | ttest)."""

    runs: list[str] = field(default_factory=list)
    out: str = "summary"
    n_resamples: int = 10_000
    confidence: float = 0.95
    stats_seed: int = 0
    test: str = "wilcoxon"


def _fmt_key(fmt: str) -> int:
    return FORMAT_ORDER.index(fmt) if fmt in FORMAT_ORDER else len(FORMAT_ORDER)


def final_pass_matrix(samples: Any) -> dict[tuple[str, str], Any]:
    """(format, split) -> DataFrame [task_id x seed] of pass rates at each model's last step."""
    if samples.empty:
        return {}
    frame = samples.copy()
    frame["format"] = frame["format"].fillna("base")
    frame.loc[frame["label"] == "base", "format"] = "base"
    frame["seed"] = frame["seed"].fillna(0).astype(int)
    frame["step"] = frame["step"].fillna(-1)
    last = frame.groupby(["label", "split"])["step"].transform("max")
    return _pass_matrices(frame[frame["step"] == last])


def _pass_matrices(frame: Any) -> dict[tuple[str, str], Any]:
    """(format, split) -> DataFrame [task_id x seed] of the rows' pass rates (one step per run)."""
    import pandas as pd

    per_task = frame.groupby(["format", "split", "seed", "task_id"])["passed"].mean().reset_index()
    out = {}
    for (fmt, split), group in per_task.groupby(["format", "split"]):
        out[(str(fmt), str(split))] = group.pivot(index="task_id", columns="seed", values="passed")
    return {k: v.sort_index() for k, v in out.items() if isinstance(v, pd.DataFrame)}


def token_matched_pass_matrix(samples: Any) -> tuple[dict[tuple[str, str], Any], int, dict]:
    """Test-split pass matrices [task_id x seed] with every run read at its checkpoint whose
    loss tokens seen are nearest `budget`, the smallest final count among the runs (nearest,
    not at-most: seeds of one format end a few tokens apart, and the run that sets the budget
    must not push the others back a whole checkpoint; ties go to the earlier step).
    Returns (matrices keyed (format, "test"), budget, {label: (step, loss tokens)})."""
    if samples.empty or "loss_tokens_seen" not in samples.columns:
        return {}, 0, {}
    frame = samples[(samples["split"] == "test") & samples["loss_tokens_seen"].notna()]
    frame = frame[frame["format"].notna() & (frame["label"] != "base")].copy()
    if frame.empty:
        return {}, 0, {}
    frame["seed"] = frame["seed"].fillna(0).astype(int)
    ckpts = frame.groupby(["label", "step"])["loss_tokens_seen"].max().reset_index()
    budget = int(ckpts.groupby("label")["loss_tokens_seen"].max().min())
    picked: dict[str, tuple[int, int]] = {}
    for label, group in ckpts.groupby("label"):
        gap = (group["loss_tokens_seen"] - budget).abs()
        row = group.loc[gap.sort_values(kind="stable").index[0]]  # sorted by step: ties early
        picked[str(label)] = (int(row["step"]), int(row["loss_tokens_seen"]))
    keep = frame[
        [picked.get(lb, (None,))[0] == st for lb, st in zip(frame["label"], frame["step"])]
    ]
    return _pass_matrices(keep), budget, picked


def _span_means(frame: Any, value: str, spans: tuple[str, ...]) -> Any:
    """Per (format, seed, example_id, span) values, own-format rows only."""
    if frame.empty:
        return frame
    rows = frame[frame["span"].isin(spans)].copy()
    if "score_format" in rows.columns:
        rows = rows[rows["score_format"].fillna(rows["format"]) == rows["format"]]
    if "step" in rows.columns:
        rows = rows[rows["step"].isna()] if rows["step"].isna().any() else rows
    return rows


def build(cfg: ReplicationConfig) -> tuple[Any, Any, str]:
    """(replication table, paired comparisons, markdown) of the runs under `cfg.runs`: per base
    model when they hold several (a `base` column, comparisons only within a base, a markdown
    section per base), else exactly one table over all of them."""
    import pandas as pd

    from plumbing.stats import StatsOptions
    from reports.results import ResultSet

    opts = StatsOptions(
        n_resamples=cfg.n_resamples, confidence=cfg.confidence, seed=cfg.stats_seed, test=cfg.test
    )
    rs = ResultSet.load(cfg.runs)
    tables = {name: rs.table(name) for name in ("samples", "ppl", "kl", "attn_examples")}
    if tables["samples"].empty:
        raise InputError(f"--runs {', '.join(cfg.runs)}: no eval samples found (run diag eval)")
    if not rs.several_bases:
        rows, comparisons, budget, picked = replicate(tables, opts)
        table, comp = pd.DataFrame(rows), pd.DataFrame(comparisons)
        return table, comp, markdown(table, comp, budget, picked)
    tables_out, comps_out, sections = [], [], []
    for base in rs.bases():
        mine = {name: _of_base(frame, base) for name, frame in tables.items()}
        if mine["samples"].empty:
            continue
        rows, comparisons, budget, picked = replicate(mine, opts)
        table = pd.DataFrame(rows)
        comp = pd.DataFrame(comparisons)
        sections.append(f"## Base model: {base}\n\n" + markdown(table, comp, budget, picked))
        tables_out.append(table.assign(base=base))
        comps_out.append(comp.assign(base=base))
    table = _base_first(pd.concat(tables_out, ignore_index=True))
    comp = _base_first(pd.concat(comps_out, ignore_index=True))
    return table, comp, "\n".join(sections)


def _of_base(frame: Any, base: str) -> Any:
    """The rows of one base model, with their labels as that base's own study names them
    ('gpt2/precede-s0' -> 'precede-s0')."""
    if frame.empty or "base" not in frame.columns:
        return frame.iloc[0:0]
    rows = frame[frame["base"] == base].copy()
    prefix = f"{base}/"
    rows["label"] = [
        lb[len(prefix) :] if isinstance(lb, str) and lb.startswith(prefix) else lb
        for lb in rows["label"]
    ]
    return rows


def _base_first(frame: Any) -> Any:
    return frame[["base", *[c for c in frame.columns if c != "base"]]]


def compare_task_matrices(
    ma: Any, mb: Any, metric: str, name_a: str, name_b: str, opts: Any
) -> dict[str, Any]:
    """`compare_pooled` of two pass matrices (rows: tasks, columns: seeds) on the tasks both
    have: the paired difference per task, its CI and the Wilcoxon p."""
    from plumbing.stats import compare_pooled

    tasks = ma.index.intersection(mb.index)
    return compare_pooled(
        [ma.loc[tasks, s].to_numpy(float) for s in ma.columns],
        [mb.loc[tasks, s].to_numpy(float) for s in mb.columns],
        metric=metric,
        name_a=name_a,
        name_b=name_b,
        opts=opts,
    )


def replicate(
    tables: dict[str, Any], opts: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, dict]:
    """The replication rows and paired comparisons of one study (the eval `samples` and the
    `ppl`, `kl`, `attn_examples` tables of one base model): (rows, comparisons, token budget,
    {label: (step, loss tokens)} of the token-matched reading)."""
    import numpy as np

    from plumbing.stats import bootstrap_mean

    rows: list[dict[str, Any]] = []
    comparisons: list[dict[str, Any]] = []

    def add(metric: str, fmt: str, split: str, values: Any, seeds: int) -> None:
        est = bootstrap_mean(np.asarray(values, dtype=float), opts)
        rows.append(
            {
                "metric": metric,
                "format": fmt,
                "split": split,
                "mean": est.mean,
                "ci_low": est.ci_low,
                "ci_high": est.ci_high,
                "n": est.n,
                "seeds": seeds,
            }
        )

    passes = final_pass_matrix(tables["samples"])
    for (fmt, split), mat in sorted(passes.items(), key=lambda kv: (kv[0][1], _fmt_key(kv[0][0]))):
        add("pass@1", fmt, split, mat.mean(axis=1).to_numpy(), mat.shape[1])
    matched, budget, picked = token_matched_pass_matrix(tables["samples"])
    for (fmt, _), mat in sorted(matched.items(), key=lambda kv: _fmt_key(kv[0][0])):
        add("pass@1:tokens", fmt, "test", mat.mean(axis=1).to_numpy(), mat.shape[1])

    def compare_all(mats: dict, metric: str) -> None:
        for split in sorted({split for _, split in mats}):
            fmts = sorted({f for f, s in mats if s == split and f != "base"}, key=_fmt_key)
            for a, b in itertools.combinations(fmts, 2):
                row = compare_task_matrices(
                    mats[(a, split)], mats[(b, split)], f"{metric}:{split}", a, b, opts
                )
                comparisons.append(row)

    compare_all(passes, "pass@1")
    compare_all(matched, "pass@1-tokens")

    def seed_mean(frame: Any, value: str) -> tuple[Any, int]:
        by_ex = frame.groupby(["example_id"])[value].mean()
        return by_ex.to_numpy(), frame["seed"].nunique()

    ppl = _span_means(tables["ppl"], "log_ppl", ("cot", "code"))
    if not ppl.empty:
        for fmt, group in ppl.groupby("format"):
            for span in ("cot", "code"):
                vals, seeds = seed_mean(group[group["span"] == span], "log_ppl")
                if len(vals):
                    add(f"log_ppl:{span}", fmt, "diag", vals, seeds)
            wide = group.pivot_table(
                index=["seed", "example_id"], columns="span", values="log_ppl"
            ).dropna()
            if {"cot", "code"} <= set(wide.columns):
                gap = (wide["cot"] - wide["code"]).groupby("example_id").mean()
                add("log_ppl_gap:cot-code", fmt, "diag", gap.to_numpy(), group["seed"].nunique())
    kl = _span_means(tables["kl"], "kl_mean", ("cot", "code", "response"))
    if not kl.empty:
        for (fmt, span), group in kl.groupby(["format", "span"]):
            vals, seeds = seed_mean(group, "kl_mean")
            add(f"kl:{span}", fmt, "diag", vals, seeds)
    attn = tables["attn_examples"]
    if not attn.empty and {"src", "dst", "mass", "example_id"} <= set(attn.columns):
        for fmt, group in attn.groupby("format"):
            for src, dst in (("cot", "code"), ("code", "cot")):
                pair = group[(group["src"] == src) & (group["dst"] == dst)]
                if pair.empty:
                    continue
                per_ex = pair.groupby(["seed", "example_id"])["mass"].mean()
                vals = per_ex.groupby("example_id").mean().to_numpy()
                add(f"attn:{src}->{dst}", fmt, "diag", vals, pair["seed"].nunique())
    return rows, comparisons, budget, picked


def markdown(table: Any, comp: Any, budget: int = 0, picked: dict | None = None) -> str:
    """The README table: pass@1 per format and split, diagnostics, and the paired tests."""
    lines = []
    passes = table[table["metric"] == "pass@1"]
    splits = sorted(passes["split"].unique())
    fmts = sorted(passes["format"].unique(), key=_fmt_key)
    seeds = int(passes["seeds"].max()) if not passes.empty else 0
    head = "| format | " + " | ".join(f"pass@1 {s} (95% CI)" for s in splits)
    diag_metrics = [
        ("log_ppl:cot", "log-PPL cot"),
        ("log_ppl:code", "log-PPL code"),
        ("log_ppl_gap:cot-code", "gap cot-code"),
        ("kl:cot", "KL cot"),
        ("kl:code", "KL code"),
        ("attn:cot->code", "attn cot->code"),
        ("attn:code->cot", "attn code->cot"),
    ]
    matched = (table["metric"] == "pass@1:tokens").any()
    if matched:
        head += " | pass@1 test, token-matched"
    present = [(m, t) for m, t in diag_metrics if (table["metric"] == m).any()]
    head += "".join(f" | {t}" for _, t in present) + " |"
    lines += [head, "|" + " --- |" * (1 + len(splits) + matched + len(present))]

    def cell(metric: str, fmt: str, split: str | None = None) -> str:
        sel = table[(table["metric"] == metric) & (table["format"] == fmt)]
        if split is not None:
            sel = sel[sel["split"] == split]
        if sel.empty:
            return "–"
        r = sel.iloc[0]
        if metric.startswith("pass@1"):
            return f"{100 * r['mean']:.1f}% [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"
        return f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"

    for fmt in fmts:
        cells = [cell("pass@1", fmt, s) for s in splits]
        cells += [cell("pass@1:tokens", fmt, "test")] if matched else []
        cells += [cell(m, fmt) for m, _ in present]
        lines.append(f"| {fmt} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Seeds per format: {seeds}. pass@1 is greedy, at the last checkpoint; CIs: bootstrap "
        "over tasks (diagnostics: over examples) of seed-averaged values."
    )
    if matched and picked:
        steps = ", ".join(
            f"{label} {step} ({tokens:,})" for label, (step, tokens) in picked.items()
        )
        lines.append(
            f"Token-matched: each run at its checkpoint nearest {budget:,} loss tokens seen (the "
            f"smallest final budget among the runs); step (loss tokens): {steps}."
        )
    if not comp.empty:
        lines += ["", "| comparison | split | diff (a - b) | 95% CI | p (Wilcoxon) | tasks |"]
        lines.append("| --- | --- | --- | --- | --- | --- |")
        for _, r in comp.iterrows():
            kind, split = str(r["metric"]).split(":", 1)
            split += ", token-matched" if kind == "pass@1-tokens" else ""
            lines.append(
                f"| {r['a']} vs {r['b']} | {split} | {100 * r['diff']:+.1f} pts | "
                f"[{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}] | "
                f"{r['p_value']:.3g} | {int(r['n'])} |"
            )
    order = ordering(table)
    if order:
        lines += [
            "",
            f"Measured order on the test split (by mean; see the paired tests for which "
            f"differences are significant): {order}. The paper: {PAPER_ORDER}.",
        ]
    return "\n".join(lines) + "\n"


def ordering(table: Any) -> str:
    """Formats by pass@1 on the test split, best first: 'precede > wo = seed > follow'; per base
    model when the table has a `base` column: 'gpt2: precede > follow; llama: follow > precede'."""
    if "base" in table.columns:
        parts = (
            f"{base}: {ordering(sub.drop(columns='base'))}" for base, sub in table.groupby("base")
        )
        return "; ".join(parts)
    sel = table[(table["metric"] == "pass@1") & (table["split"] == "test")]
    sel = sel[sel["format"] != "base"].sort_values("mean", ascending=False, kind="stable")
    text = ""
    previous = None
    for _, row in sel.iterrows():
        if previous is not None:
            text += " = " if row["mean"] == previous else " > "
        text += str(row["format"])
        previous = row["mean"]
    return text


def main(cfg: ReplicationConfig) -> dict[str, Any]:
    out = Path(cfg.out)
    manifest = Manifest("replication", out, config=cfg, seed=cfg.stats_seed)
    table, comp, text = build(cfg)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_parquet(out / "replication.parquet", table)
    atomic_write_parquet(out / "comparisons.parquet", comp)
    atomic_write_text(out / "replication.md", text)
    manifest.finish(order=ordering(table))
    print(text)
    return {"order": ordering(table), "rows": len(table)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    main(ReplicationConfig(runs=args.runs, out=args.out))
