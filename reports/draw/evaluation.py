"""Figures of pass@1 (diag eval, pass_at_k.parquet): the results table, the table by
difficulty, and pass@1 over training checkpoints.

    from reports.draw.evaluation import results_table
    made = results_table(ResultSet.load(["demo_out"]))   # Made(fig, caption, data) or Skip
"""

from __future__ import annotations

from typing import Any

from reports.draw.common import Made, apply_layout, best_fills, curve_figure, table_figure
from reports.figure_data import (
    Skip,
    bench_name,
    bench_splits,
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
from reports.results import ResultSet, sort_labels


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


def results_table(rs: ResultSet) -> Made:
    frame = final_pass1(rs)
    table = pass1_table(frame)
    labels = sort_labels(frame["label"])
    benches = bench_splits(frame)
    header = ["model", "format", "seed"]
    columns: list[list[Any]] = [
        labels,
        [label_format(x) for x in labels],
        [seeds_text(frame[frame["label"] == x]) for x in labels],
    ]
    fills = [["white"] * len(labels)] * 3
    for bench, split in benches:
        sub = table[(table["bench"] == bench) & (table["split"] == split)]
        cells, values = _pass_column(sub, labels)
        header.append(f"{bench_name(bench)} / {split}")
        columns.append(cells)
        fills.append(best_fills(values))
    fig = table_figure(header, columns, fills)
    height = 170 + 34 * len(labels)
    apply_layout(fig, "pass@1 per format (final models; 95% bootstrap CI over tasks)", 900, height)
    n_tasks = join_values(frame["n_tasks"])
    caption = (
        f"pass@1 of the final model of {', '.join(labels)} (seeds {seeds_text(frame)}) on "
        f"{'; '.join(f'{bench_name(b)}/{s}' for b, s in benches)} (n tasks: {n_tasks}); "
        "brackets: 95% "
        "bootstrap CI over tasks; the best per column is shaded."
    )
    return Made(fig, caption, table, 900, height)


def difficulty_table(rs: ResultSet) -> Made:
    frame = final_pass1_by_difficulty(rs)
    table = pass1_table(frame)
    levels = difficulty_levels(frame)
    labels = sort_labels(frame["label"])
    header, columns, fills = ["model"], [labels], [["white"] * len(labels)]
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
    frame = frame[(frame["group"] == "all")].dropna(subset=["step"])
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
