"""The table of paired comparisons (every summary_*.parquet: a − b with a CI and a test).

from reports.draw.comparisons import comparisons_table
made = comparisons_table(ResultSet.load(["demo_out"]))   # Made(fig, caption, data) or Skip
"""

from __future__ import annotations

from reports.draw.common import Made, apply_layout, table_figure
from reports.figure_data import fmt_ci, join_values, paired_comparisons
from reports.results import ResultSet


def comparisons_table(rs: ResultSet) -> Made:
    frame = paired_comparisons(rs)
    header = ["from", "metric", "a", "b", "mean a", "mean b", "a − b [95% CI]", "p", "test", "n"]
    columns = [
        frame["source"].astype(str).str.removeprefix("summary_").tolist(),
        frame["metric"].tolist(),
        frame["a"].tolist(),
        frame["b"].tolist(),
        [f"{v:.4g}" for v in frame["mean_a"]],
        [f"{v:.4g}" for v in frame["mean_b"]],
        [
            fmt_ci(d, lo, hi, 4)
            for d, lo, hi in zip(frame["diff"], frame["ci_low"], frame["ci_high"])
        ],
        [f"{p:.3g}" for p in frame["p_value"]],
        frame["test"].astype(str).tolist(),
        frame["n"].astype(str).tolist(),
    ]
    sig = [
        "#dff0d8" if (lo > 0 or hi < 0) else "white"
        for lo, hi in zip(frame["ci_low"].fillna(0), frame["ci_high"].fillna(0))
    ]
    fills = [["white"] * len(frame)] * 6 + [sig] + [["white"] * len(frame)] * 3
    fig = table_figure(
        header, columns, fills, widths=[1.3, 3.6, 1.8, 1.8, 0.9, 0.9, 2.2, 0.8, 0.9, 0.5]
    )
    height = 140 + 30 * len(frame)
    apply_layout(fig, "Paired comparisons (a − b, 95% CI; shaded: CI excludes 0)", 1200, height)
    caption = (
        f"{len(frame)} paired comparisons from {join_values(frame['source'])}: mean of "
        "per-example differences a − b with a paired bootstrap CI and a paired test (p); "
        "n = pairs."
    )
    return Made(fig, caption, frame, 1400, height)
