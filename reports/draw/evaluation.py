"""Figures of pass@1 (diag eval, pass_at_k.parquet): the results table, the table by
difficulty, pass@1 over training checkpoints, and the cross-base curve (samples.parquet: one
panel per base model).

    from reports.draw.evaluation import results_table
    made = results_table(ResultSet.load(["demo_out"]))   # Made(fig, caption, data) or Skip
"""

from __future__ import annotations

from typing import Any

from reports.draw.common import Made, apply_layout, best_fills, curve_figure, table_figure
from reports.figure_data import (
    Skip,
    base_pass1_curves,
    bench_name,
    bench_splits,
    bench_title,
    difficulty_levels,
    final_pass1,
    final_pass1_by_difficulty,
    fmt_ci,
    join_values,
    label_format,
    pass1_rows,
    pass1_table,
    seeds_text,
)
from reports.results import ResultSet, sort_labels, split_label


def _pass_column(table: Any, labels: list[str]) -> tuple[list[str], list[float]]:
    """One table column (the pass1_table rows of one bench/split, maybe one difficulty): the
    cell texts and the values for the highlight, one per label ('–' and NaN when absent)."""
    cells, values = [], []
    for label in labels:
        hit = table[table["label"] == label]
        if hit.empty:
            cells.append("–")
            values.append(float("nan"))
            continue
        r = hit.iloc[0]
        cells.append(f"{fmt_ci(r['pass_at_1'], r['ci_low'], r['ci_high'])} (n={r['n_tasks']})")
        values.append(float(r["pass_at_1"]))
    return cells, values


def _base_plus_column(
    base: Any, plus: Any, labels: list[str]
) -> tuple[list[str], list[float], list[list[float]]]:
    """A column in the paper's form, 'base (plus)' (evalplus: HumanEval and HumanEval+ of the
    same samples), shaded by plus; per label, the numbers the row's Average takes."""
    cells, values, numbers = [], [], []
    for label in labels:
        b, p = base[base["label"] == label], plus[plus["label"] == label]
        if p.empty:
            cells.append("–")
            values.append(float("nan"))
            numbers.append([])
            continue
        got = [float(b.iloc[0]["pass_at_1"])] if not b.empty else []
        plus_value = float(p.iloc[0]["pass_at_1"])
        base_text = f"{got[0]:.3f}" if got else "–"
        cells.append(f"{base_text} ({plus_value:.3f}) (n={p.iloc[0]['n_tasks']})")
        values.append(plus_value)
        numbers.append([*got, plus_value])
    return cells, values, numbers


def results_table(rs: ResultSet) -> Made:
    """pass@1 per model and benchmark, as the paper's table has it: evalplus benchmarks as
    'base (plus)' in one cell, and an Average column (the mean of every number in the row, base
    and plus each counted) when there are two benchmarks or more."""
    import math

    import pandas as pd

    frame = final_pass1(rs)
    table = pass1_table(frame)
    try:
        base_table = pass1_table(final_pass1(rs, "base"))
    except Skip:
        base_table = pd.DataFrame(columns=["label", "bench", "split", "pass_at_1"])
    labels = sort_labels(frame["label"])
    benches = bench_splits(frame)
    header = ["model", "format", "seed"]
    columns: list[list[Any]] = [
        labels,
        [label_format(x) for x in labels],
        [seeds_text(frame[frame["label"] == x]) for x in labels],
    ]
    if rs.several_bases:  # runs of several base models: say which each model was trained from
        header.insert(1, "base")
        columns.insert(1, [split_label(x)[0] or "–" for x in labels])
    fills = [["white"] * len(labels)] * len(columns)
    row_numbers: list[list[float]] = [[] for _ in labels]
    for bench, split in benches:
        sub = table[(table["bench"] == bench) & (table["split"] == split)]
        base = base_table[(base_table["bench"] == bench) & (base_table["split"] == split)]
        if base.empty:
            cells, values = _pass_column(sub, labels)
            numbers = [[] if math.isnan(v) else [v] for v in values]
        else:
            cells, values, numbers = _base_plus_column(base, sub, labels)
        for mine, got in zip(row_numbers, numbers):
            mine.extend(got)
        header.append(bench_title(bench, split))
        columns.append(cells)
        fills.append(best_fills(values))
    if len(benches) > 1:
        averages = [sum(x) / len(x) if x else float("nan") for x in row_numbers]
        header.append("Average")
        columns.append(["–" if math.isnan(v) else f"{v:.3f}" for v in averages])
        fills.append(best_fills(averages))
    width = max(900, 200 * len(header))
    fig = table_figure(header, columns, fills)
    height = 170 + 34 * len(labels)
    apply_layout(
        fig, "pass@1 per format (final models; 95% bootstrap CI over tasks)", width, height
    )
    n_tasks = join_values(frame["n_tasks"])
    caption = (
        f"pass@1 of the final model of {', '.join(labels)} (seeds {seeds_text(frame)}) on "
        f"{'; '.join(f'{bench_name(b)}/{s}' for b, s in benches)} (n tasks: {n_tasks}); "
        "brackets: 95% bootstrap CI over tasks; 'a (b)': base tests a, plus tests b (evalplus, "
        "plus counted only with base); Average: the mean of every number in the row; the best "
        "per column is shaded."
    )
    if not base_table.empty:
        table = pd.concat([table.assign(suite="main"), base_table.assign(suite="base")])
    return Made(fig, caption, table.reset_index(drop=True), width, height)


def difficulty_table(rs: ResultSet) -> Made:
    frame = final_pass1_by_difficulty(rs)
    table = pass1_table(frame)
    levels = difficulty_levels(frame)
    labels = sort_labels(frame["label"])
    header, columns, fills = ["model"], [labels], [["white"] * len(labels)]
    if rs.several_bases:
        header.append("base")
        columns.append([split_label(x)[0] or "–" for x in labels])
        fills.append(["white"] * len(labels))
    for bench, split in bench_splits(frame):
        for level in levels:
            sub = table[
                (table["bench"] == bench)
                & (table["split"] == split)
                & (table["difficulty"] == level)
            ]
            if sub.empty:
                continue
            cells, values = _pass_column(sub, labels)
            header.append(f"{bench_name(bench)}/{split}: {level}")
            columns.append(cells)
            fills.append(best_fills(values))
    width = max(900, 220 * len(header))
    height = 170 + 34 * len(labels)
    fig = table_figure(header, columns, fills)
    apply_layout(fig, "pass@1 by difficulty (final models; 95% bootstrap CI)", width, height)
    caption = (
        f"pass@1 per difficulty level ({', '.join(levels)}) for {', '.join(labels)} "
        f"(seeds {seeds_text(frame)}); n = tasks at that level; brackets: 95% bootstrap CI."
    )
    return Made(fig, caption, table, width, height)


def pass_at_1_checkpoints(rs: ResultSet) -> Made:
    frame = pass1_rows(rs)
    frame = frame[(frame["group"] == "all") & (frame["suite"] == "main")].dropna(subset=["step"])
    steps = frame.groupby("label")["step"].nunique()
    frame = frame[frame["label"].isin(steps[steps > 1].index)]
    if frame.empty:
        raise Skip(
            "no model was evaluated at more than one checkpoint: "
            "run diag eval --all-checkpoints on the training runs"
        )
    frame = frame.assign(panel=frame["bench"].map(bench_name) + "/" + frame["split"].astype(str))
    fig, width = curve_figure(
        frame.rename(columns={"pass_at_k": "pass_at_1"}),
        "step",
        "pass_at_1",
        "label",
        "panel",
        "pass@1 over training checkpoints (95% CI band)",
        "pass@1",
    )
    fig.update_yaxes(range=[-0.02, 1.02])
    labels = sort_labels(frame["label"])
    caption = (
        f"pass@1 at every saved checkpoint of {', '.join(labels)} (seeds {seeds_text(frame)}) on "
        f"{join_values(frame['panel'])} (n tasks {join_values(frame['n_tasks'])}); bands: 95% "
        "bootstrap CI over tasks."
    )
    cols = [
        "label",
        "format",
        "seed",
        "step",
        "bench",
        "split",
        "pass_at_k",
        "ci_low",
        "ci_high",
        "n_tasks",
    ]
    data = frame[cols].sort_values(["label", "bench", "split", "step"]).reset_index(drop=True)
    return Made(fig, caption, data, width, 480)


def pass_at_1_bases(rs: ResultSet) -> Made:
    """The paper's cross-base curve: pass@1 over checkpoints, one panel per base model,
    precede vs follow (and wo when present), seeds pooled, with 95% CI bands."""
    from reports.results import sort_labels as study_order

    data = base_pass1_curves(rs)
    # one line per format: curve_figure colors a `label` group by its format
    fig, width = curve_figure(
        data.assign(label=data["format"]),
        "step",
        "pass_at_1",
        "label",
        "base",
        "pass@1 over training checkpoints per base model (95% CI band)",
        "pass@1",
    )
    fig.update_yaxes(range=[-0.02, 1.02])
    bench, split = data["bench"].iloc[0], data["split"].iloc[0]
    caption = (
        f"pass@1 at every evaluated checkpoint of {', '.join(study_order(data['format']))}, one "
        f"panel per base model ({join_values(data['base'])}) on {bench_name(bench)}/{split} "
        f"(n tasks {join_values(data['n_tasks'])}; seeds per point {join_values(data['seeds'])}"
        "): each task's pass rate averaged over samples and seeds; bands: 95% bootstrap CI over "
        "tasks."
    )
    return Made(fig, caption, data.reset_index(drop=True), width, 480)
