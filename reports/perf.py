"""Instruction cost per format (is code-first code slower?): from `diag eval --profile` runs, or
`--bench evalperf` (samples.parquet's `instructions` and `perf_counter` columns).

    from reports.perf import PERF_FIGURES, cost_per_format
    made = cost_per_format(ResultSet.load(["runs/eval-follow", "runs/eval-precede"]))

What is drawn, per benchmark: the relative cost of each model's correct code. A model's cost on a
task is the mean instruction count of its profiled passing samples; only tasks that every model
of the benchmark solved are kept (comparing costs of different tasks says nothing), and each
cost is divided by the geometric mean of all models' costs on that task. A bar is the geometric
mean of those ratios over the tasks (1.0: as costly as the models' typical solution; 1.2: 20%
more instructions), with a seeded percentile-bootstrap interval over tasks (of the mean log
ratio). Counts made with different counters (hw and valgrind) measure different things: the
figure is refused (skipped with that reason) when the runs mix them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from reports.draw.common import Made, apply_layout, label_color, plotly_go
from reports.figure_data import Skip, bench_name
from reports.figures import FigureSpec
from reports.results import ResultSet, sort_labels

BOOT_SEED, BOOT_RESAMPLES = 0, 2000


def cost_table(samples: Any) -> Any:
    """Rows (bench, label, tasks, relative_cost, ci_low, ci_high, mean_instructions, counter)
    from the samples table; Skip when nothing was profiled or counters are mixed."""
    import numpy as np
    import pandas as pd

    from evaluation.perf import check_same_counter
    from plumbing import InputError
    from plumbing.stats import StatsOptions, bootstrap_mean

    if "instructions" not in samples.columns or samples["instructions"].isna().all():
        raise Skip("no instruction counts: run `diag eval ... --profile` (or --bench evalperf)")
    counted = samples[samples["instructions"].notna() & samples["passed"].astype(bool)]
    try:
        counter = check_same_counter(list(counted["perf_counter"]), "cost per format")
    except InputError as err:
        raise Skip(str(err)) from None
    rows = []
    for bench, part in counted.groupby("bench", sort=True):
        cost = part.groupby(["task_id", "label"])["instructions"].mean().unstack("label")
        cost = cost.dropna()  # tasks every model solved
        if cost.shape[1] < 1 or cost.empty:
            continue
        logs = np.log(cost.astype(float))
        ratios = logs.sub(logs.mean(axis=1), axis=0)  # log(cost / geometric mean of the task)
        for label in sort_labels(cost.columns):
            est = bootstrap_mean(
                ratios[label].to_numpy(), StatsOptions(n_resamples=BOOT_RESAMPLES, seed=BOOT_SEED)
            )
            rows.append(
                {
                    "bench": bench_name(bench),
                    "label": label,
                    "tasks": int(len(cost)),
                    "relative_cost": math.exp(est.mean),
                    "ci_low": math.exp(est.ci_low),
                    "ci_high": math.exp(est.ci_high),
                    "mean_instructions": float(cost[label].mean()),
                    "counter": counter,
                }
            )
    if not rows:
        raise Skip("no task was solved (with a profiled sample) by every model")
    return pd.DataFrame(rows)


def cost_per_format(rs: ResultSet) -> Made:
    """A bar per model and benchmark: the relative instruction cost of its correct code."""
    go = plotly_go()
    data = cost_table(rs.table("samples"))
    fig = go.Figure()
    for label, part in data.groupby("label", sort=False):
        fig.add_trace(
            go.Bar(
                name=str(label),
                x=part["bench"],
                y=part["relative_cost"],
                marker_color=label_color(str(label)),
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=part["ci_high"] - part["relative_cost"],
                    arrayminus=part["relative_cost"] - part["ci_low"],
                ),
            )
        )
    fig.add_hline(y=1.0, line_dash="dot", line_color="#888")
    apply_layout(
        fig,
        "Instruction cost of correct code per format (1 = the models' typical cost)",
        900,
        520,
        barmode="group",
        yaxis_title="relative instructions (geometric mean over tasks)",
    )
    counter = data["counter"].iloc[0]
    tasks = ", ".join(f"{b}: {n}" for b, n in data.groupby("bench")["tasks"].first().items())
    caption = (
        f"Instructions ({counter} counter) of each model's passing samples, per task relative to "
        f"the geometric mean over models, on the tasks every model solved ({tasks}); 95% "
        "bootstrap intervals over tasks."
    )
    return Made(fig, caption, data)


def has_profiles(rs: ResultSet) -> bool:
    """Whether any eval run of `rs` counted instructions (`--profile`, evalperf)."""
    samples = rs.table("samples")
    return "instructions" in samples.columns and bool(samples["instructions"].notna().any())


@dataclass(frozen=True)
class PerfFigureSpec(FigureSpec):
    """A figure attempted only for runs with instruction counts (others are not listed as
    skipped: most eval runs are not profiled)."""

    why_not_applicable: str = (
        "needs eval runs with instruction counts (diag eval --profile, or --bench evalperf)"
    )

    def applies(self, rs: ResultSet) -> bool:
        return has_profiles(rs)


PERF_FIGURES: dict[str, FigureSpec] = {
    "cost_per_format": PerfFigureSpec(
        "cost_per_format",
        "instruction cost of correct code per format (diag eval --profile / evalperf)",
        cost_per_format,
        needs=("samples",),
    )
}
