"""The numbers the figures draw: tidy frames in, tidy frames out (pandas only, no plotly).

    from reports.figure_data import final_pass1, pass1_table, Skip
    rs = ResultSet.load(["demo_out"])
    table = pass1_table(final_pass1(rs))   # label, bench, split, step, pass_at_1, ci_low, ...

Shared by the report's drawing code (reports/draw/) and the dashboard (app/), so a figure and
the dashboard show the same numbers. A function raises `Skip` when the tables exist but do not
hold what is asked for (e.g. no k=1 rows); the message says why. Every mean carries a seeded
percentile-bootstrap CI over examples (`stats_opts`, plumbing.stats), so the same inputs give
byte-identical outputs. Also here: the ordering of spans and difficulties, the short texts
captions are made of (`join_values`, `seeds_text`, `run_inputs`) and the cell text of a mean
with its CI (`fmt_ci`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from plumbing.stats import SUMMARY_COLUMNS
from reports.results import ResultSet, sort_labels, split_label

SPAN_ORDER = ("sink", "prompt", "cot", "code", "glue", "eos", "other", "response", "gap", "all")
DIFFICULTY_ORDER = ("easy", "medium", "hard")
BOOTSTRAP_RESAMPLES = 2000  # figure CIs (seeded; the producing commands use their own setting)


class Skip(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The inputs exist but do not hold what this figure draws; the message says why."""


# ---------------------------------------------------------------------------------------------
# labels, spans, benches, texts


def label_format(label: str) -> str:
    """The training format of a model label: 'follow-s1' -> 'follow', 'gpt2/follow-s1' ->
    'follow' (a label naming its base model, reports.results.display_label)."""
    return split_label(label)[1].split("-", 1)[0]


def span_sorted(spans: Sequence[str]) -> list[str]:
    """Distinct span names in SPAN_ORDER; unknown ones last, by name."""

    def key(s: str) -> tuple[int, str]:
        return (SPAN_ORDER.index(s) if s in SPAN_ORDER else len(SPAN_ORDER), str(s))

    return sorted({str(s) for s in spans}, key=key)


# the split a paper benchmark's column shows without naming it
PAPER_DEFAULT_SPLITS = {"bigcodebench": "complete"}
# the paper's names for the benchmarks it reports ("HumanEval(+)": base and plus in one cell)
PAPER_BENCH_NAMES = {
    "humaneval": "HumanEval",
    "humaneval+": "HumanEval(+)",
    "mbpp": "MBPP",
    "mbpp+": "MBPP(+)",
    "livecodebench": "LiveCodeBench",
    "bigcodebench": "BigCodeBench",
    "leetcode-contest": "LeetCode",
}


def bench_name(bench: Any) -> str:
    """A benchmark as figures show it: `jsonl:/long/path/x.jsonl` -> `jsonl:x.jsonl`."""
    text = str(bench)
    if text.startswith("jsonl:"):
        return "jsonl:" + text[len("jsonl:") :].rsplit("/", 1)[-1]
    return text


def bench_title(bench: Any, split: Any) -> str:
    """A results-table column title: the paper's name of a benchmark it reports (with the split
    when it is not the test set, e.g. BigCodeBench / instruct), else `bench / split`."""
    name = PAPER_BENCH_NAMES.get(str(bench))
    if name is None:
        return f"{bench_name(bench)} / {split}"
    plain = str(split) in ("test", PAPER_DEFAULT_SPLITS.get(str(bench)))
    return name if plain else f"{name} / {split}"


def fmt_ci(mean: float, low: float, high: float, digits: int = 3) -> str:
    """'0.250 [0.100, 0.400]'; the mean alone when the CI is missing; '–' without a mean."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if low is None or high is None or any(math.isnan(float(v)) for v in (low, high)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def stats_opts() -> Any:
    """The seeded bootstrap settings of every figure CI (plumbing.stats.StatsOptions)."""
    from plumbing.stats import StatsOptions

    return StatsOptions(n_resamples=BOOTSTRAP_RESAMPLES, seed=0)


def join_values(values: Any) -> str:
    """Distinct values, sorted and comma-joined, for a caption ('–' when none)."""
    vals = sorted({str(v) for v in values if v is not None and str(v) not in ("nan", "None")})
    return ", ".join(vals) if vals else "–"


def seeds_text(frame: Any) -> str:
    """The training seeds in `frame`, comma-joined, for a caption ('–' when none)."""
    if "seed" not in frame.columns:
        return "–"
    seeds = sorted({int(s) for s in frame["seed"].dropna()})
    return ", ".join(str(s) for s in seeds) if seeds else "–"


def run_inputs(rs: ResultSet, frame: Any) -> str:
    """'data X, split Y' from the manifests of the runs that produced `frame`."""
    if frame is None or frame.empty or "run" not in frame.columns:
        return ""
    names = set(frame["run"].unique())
    data, split = set(), set()
    for run in rs.runs:
        if run.name in names:
            cfg = run.config
            if cfg.get("data"):
                data.add(str(cfg["data"]).rsplit("/", 1)[-1])
            for key in ("split", "splits"):
                if cfg.get(key):
                    value = cfg[key]
                    split.update(value if isinstance(value, list) else [value])
    parts = []
    if data:
        parts.append(f"data {join_values(data)}")
    if split:
        parts.append(f"split {join_values(split)}")
    return ", ".join(parts)


def final_rows(frame: Any) -> Any:
    """Rows of each label's last step. Every command names a run's final/ by the step it was
    saved at (training.modeling.ModelRef), so a final model and the checkpoint of its step are
    one point; a label without steps (a model outside a training run) keeps all its rows."""
    if "step" not in frame.columns:
        return frame
    last = frame.groupby("label", dropna=False)["step"].transform("max")
    keep = (frame["step"] == last) | last.isna()
    return frame[keep].sort_values("label", kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# pass@1 (diag eval) and paired comparisons (summary_*.parquet)


def pass1_rows(rs: ResultSet) -> Any:
    """pass_at_k.parquet rows at k=1, one per model, step, bench, split and group."""
    frame = rs.table("pass_at_k")
    frame = frame[frame["k"] == 1]
    # `suite` (diag eval): "main" is each sample's verdict, "base" evalplus's base tests alone;
    # pass_at_k files written before it had main rows only
    suite = frame["suite"].fillna("main") if "suite" in frame.columns else "main"
    frame = frame.assign(suite=suite)
    # the same model evaluated twice on a bench (e.g. final/ alone and with --all-checkpoints):
    # keep one row, from the first run by name
    keys = [c for c in ("label", "step", "bench", "split", "suite", "group", "k") if c in frame]
    frame = frame.drop_duplicates(subset=keys, keep="first")
    if frame.empty:
        raise Skip("pass_at_k.parquet has no k=1 rows")
    return frame


def final_pass1(rs: ResultSet, suite: str = "main") -> Any:
    """pass@1 rows of each model's final checkpoint over all tasks (group all) for one suite
    ("main": each sample's verdict; "base": evalplus's base tests)."""
    frame = final_rows(pass1_rows(rs))
    frame = frame[(frame["group"] == "all") & (frame["suite"] == suite)]
    if frame.empty:
        raise Skip("pass_at_k.parquet has no group=all rows at k=1")
    return frame


def final_pass1_by_difficulty(rs: ResultSet) -> Any:
    """pass@1 rows of each model's final checkpoint per difficulty (column `difficulty`)."""
    frame = final_rows(pass1_rows(rs))
    frame = frame[
        frame["group"].astype(str).str.startswith("difficulty=") & (frame["suite"] == "main")
    ]
    if frame.empty:
        raise Skip("no difficulty groups in pass_at_k.parquet (the benchmark has no difficulty)")
    return frame.assign(difficulty=frame["group"].astype(str).str.split("=", n=1).str[1])


def difficulty_levels(frame: Any) -> list[str]:
    """The difficulties in `frame` (column `difficulty`): easy, medium, hard, then others."""
    return sorted(
        frame["difficulty"].unique(),
        key=lambda d: (DIFFICULTY_ORDER.index(d) if d in DIFFICULTY_ORDER else 9, d),
    )


def bench_splits(frame: Any) -> list[tuple[str, str]]:
    """The distinct (bench, split) pairs of `frame`, sorted."""
    pairs = frame[["bench", "split"]].drop_duplicates().astype(str)
    return sorted(map(tuple, pairs.to_numpy().tolist()))


def pass1_table(frame: Any) -> Any:
    """Tidy pass@1 of `frame` (final_pass1 or final_pass1_by_difficulty): one row per bench,
    split, difficulty (when `frame` has one) and model (study order): label, bench, split,
    [difficulty,] step, pass_at_1, ci_low, ci_high, n_tasks."""
    import pandas as pd

    labels = sort_labels(frame["label"])
    levels = difficulty_levels(frame) if "difficulty" in frame.columns else [None]
    rows = []
    for bench, split in bench_splits(frame):
        for level in levels:
            sub = frame[
                (frame["bench"].astype(str) == bench) & (frame["split"].astype(str) == split)
            ]
            ident: dict[str, Any] = dict(bench=bench, split=split)
            if level is not None:
                sub = sub[sub["difficulty"] == level]
                ident["difficulty"] = level
            for label in labels:
                hit = sub[sub["label"] == label]
                if hit.empty:
                    continue
                r = hit.iloc[0]
                rows.append(
                    dict(
                        label=label,
                        **ident,
                        step=r.get("step"),
                        pass_at_1=float(r["pass_at_k"]),
                        ci_low=float(r["ci_low"]),
                        ci_high=float(r["ci_high"]),
                        n_tasks=int(r["n_tasks"]),
                    )
                )
    return pd.DataFrame(rows)


# the formats of the cross-base curve (the paper's: code-first vs CoT-first, and no CoT)
CROSS_BASE_FORMATS = ("wo", "follow", "precede")


def cross_base_split(frame: Any) -> tuple[str, str]:
    """The (bench, split) the cross-base curve draws: the first with split `test`, else the
    first of all."""
    pairs = bench_splits(frame)
    tests = [pair for pair in pairs if pair[1] == "test"]
    return (tests or pairs)[0]


def base_pass1_curves(rs: ResultSet) -> Any:
    """pass@1 over checkpoints per base model and format (precede, follow, wo), seeds pooled:
    each task's pass rate averaged over samples, then over seeds, then a bootstrap CI over
    tasks; on one bench/split (cross_base_split). Columns: base, format, step, bench, split,
    pass_at_1, ci_low, ci_high, n_tasks, seeds. Skip with fewer than two bases."""
    import pandas as pd

    from plumbing.stats import bootstrap_mean

    if not rs.several_bases:
        raise Skip(
            f"the runs hold models of one base model ({join_values(rs.bases())}): the cross-base "
            "curve needs two or more (diag train --base B2 ..., then diag eval --all-checkpoints)"
        )
    frame = rs.table("samples")
    keep = frame["format"].isin(CROSS_BASE_FORMATS) & frame["base"].notna() & frame["step"].notna()
    frame = frame[keep & (frame["status"] != "skipped")]
    if frame.empty:
        raise Skip("samples.parquet has no precede/follow/wo rows at a training step")
    bench, split = cross_base_split(frame)
    frame = frame[(frame["bench"].astype(str) == bench) & (frame["split"].astype(str) == split)]
    frame = frame.assign(seed=frame["seed"].fillna(0).astype(int), step=frame["step"].astype(int))
    steps = frame.groupby(["base", "format"])["step"].nunique()
    if not (steps > 1).any():
        raise Skip(
            "no base model's runs were evaluated at more than one checkpoint: run diag eval "
            "--all-checkpoints on the training runs"
        )
    keys = ["base", "format", "step"]
    per_task = frame.groupby([*keys, "seed", "task_id"])["passed"].mean().reset_index()
    rows = []
    for (base, fmt, step), group in per_task.groupby(keys, sort=True):
        values = group.groupby("task_id")["passed"].mean()  # seeds averaged per task
        est = bootstrap_mean(values.to_numpy(float), stats_opts())
        rows.append(
            dict(
                base=str(base),
                format=str(fmt),
                step=int(step),
                bench=bench,
                split=split,
                pass_at_1=est.mean,
                ci_low=est.ci_low,
                ci_high=est.ci_high,
                n_tasks=est.n,
                seeds=int(group["seed"].nunique()),
            )
        )
    return pd.DataFrame(rows)


# a summary_*.parquet row and the file it came from
COMPARISON_COLUMNS = ("source", *SUMMARY_COLUMNS)


def paired_comparisons(rs: ResultSet) -> Any:
    """The two-model rows of every summary_*.parquet (a − b with a paired CI and test), sorted
    by source, metric, a, b; the columns of COMPARISON_COLUMNS that exist."""
    frame = rs.table("comparisons")
    # two-sided rows only (summaries also hold one-model estimates with an empty `b`)
    frame = frame[frame["b"].notna() & (frame["b"].astype(str).str.len() > 0)].copy()
    if frame.empty:
        raise Skip("the summary_*.parquet files hold no two-model comparison")
    frame = frame.sort_values(["source", "metric", "a", "b"], kind="stable").reset_index(drop=True)
    return frame[[c for c in COMPARISON_COLUMNS if c in frame.columns]]


# ---------------------------------------------------------------------------------------------
# perplexity (diag ppl)


def own_format_ppl(rs: ResultSet) -> Any:
    """ppl.parquet rows of the final models scored on the text of their own training format."""
    frame = final_rows(rs.table("ppl"))
    if "score_format" in frame.columns:
        own = frame[frame["score_format"].fillna(frame["format"]) == frame["format"]]
        if not own.empty:
            frame = own
    return frame


def cot_code_gaps(own: Any, labels: Sequence[str]) -> Any:
    """Per model, the mean over examples of log-PPL(cot) − log-PPL(code) with a bootstrap CI:
    label, gap, ci_low, ci_high, n (models without both spans are left out). The producer's
    `gap` rows when `own` (own_format_ppl) has them, else the difference of the span rows."""
    import pandas as pd

    from plumbing.stats import bootstrap_mean

    if (own["span"] == "gap").any():
        gap_rows = own[own["span"] == "gap"][["label", "example_id", "log_ppl"]]
    else:
        spans = own[own["span"].isin(["cot", "code"])]
        wide = spans.pivot_table(
            index=["label", "example_id"], columns="span", values="log_ppl", aggfunc="first"
        ).dropna()
        gap_rows = (wide["cot"] - wide["code"]).rename("log_ppl").reset_index()
    gaps = []
    for label in labels:
        est = bootstrap_mean(gap_rows.loc[gap_rows["label"] == label, "log_ppl"], stats_opts())
        if est.n == 0:
            continue
        gaps.append(
            dict(label=label, gap=est.mean, ci_low=est.ci_low, ci_high=est.ci_high, n=est.n)
        )
    return pd.DataFrame(gaps, columns=["label", "gap", "ci_low", "ci_high", "n"])


# ---------------------------------------------------------------------------------------------
# attention (diag attn)


def final_attn(rs: ResultSet) -> Any:
    """attn.parquet rows of the final models."""
    frame = final_rows(rs.table("attn"))
    if frame.empty:
        raise Skip("attn.parquet is empty")
    return frame


def span_matrix(frame: Any, srcs: list[str], dsts: list[str]) -> list[list[float]]:
    """[src][dst] mean mass over the rows given (layers and heads); NaN for absent pairs and
    for pairs the causal mask hides (attn.parquet `visible` False: the key span comes later)."""
    if "visible" in frame.columns:
        frame = frame[frame["visible"].astype(bool)]
    table = frame.groupby(["src", "dst"])["mass"].mean()
    return [[float(table.get((s, d), float("nan"))) for d in dsts] for s in srcs]


def attn_spans(frame: Any) -> tuple[list[str], list[str]]:
    """(query spans, key spans): prompt, cot, code first; key-only columns (other, sink) last."""
    srcs = span_sorted(frame["src"].unique())
    dsts = span_sorted(frame["dst"].unique())
    return srcs, dsts


def cot_code_attn_per_layer(frame: Any) -> Any:
    """Per model and layer, the attention mass of the later of CoT/code on the earlier one,
    over heads: label, src, dst, layer, mean, min, max."""
    pairs = frame[
        ((frame["src"] == "code") & (frame["dst"] == "cot"))
        | ((frame["src"] == "cot") & (frame["dst"] == "code"))
    ]
    if pairs.empty:
        raise Skip("attn.parquet has no cot/code span pairs (formats without a CoT)")
    per = (
        pairs.groupby(["label", "src", "dst", "layer"])["mass"]
        .agg(["mean", "min", "max"])
        .reset_index()
    )
    # Causal attention only flows from the later span to the earlier one; keep those curves
    # (attn.parquet's `visible` says so; without it, pairs with no mass at all are dropped).
    if "visible" in pairs.columns:
        seen = pairs[pairs["visible"].astype(bool)][["label", "src", "dst"]].drop_duplicates()
        per = per.merge(seen, on=["label", "src", "dst"])
    else:
        per = per[per.groupby(["label", "src", "dst"])["mean"].transform("max") > 0]
    return per
