"""The figure of ablations (diag ablate, ablate_curves.parquet): pass@1 over training steps of
each training-data variant, retrained with the same budget.

    from reports.draw.ablate import ablation_curves
    made = ablation_curves(ResultSet.load(["demo_out"]))   # Made(fig, caption, data) or Skip
"""

from __future__ import annotations

from reports.draw.common import Made, curve_figure
from reports.figure_data import Skip, bench_name, join_values, seeds_text
from reports.results import ResultSet


def ablation_curves(rs: ResultSet) -> Made:
    frame = rs.table("ablate_curves").dropna(subset=["step"])
    if frame.empty:
        raise Skip("ablate_curves.parquet has no steps")
    frame = frame.assign(
        panel=frame["label"].astype(str)
        + " · "
        + frame["bench"].map(bench_name)
        + "/"
        + frame["split"].astype(str)
    )
    fig, width = curve_figure(
        frame,
        "step",
        "pass_at_1",
        "variant",
        "panel",
        "Ablations: pass@1 over training (95% CI band)",
        "pass@1",
    )
    fig.update_yaxes(range=[-0.02, 1.02])
    variants = sorted(frame["variant"].astype(str).unique())
    caption = (
        f"pass@1 at every checkpoint of each training-data variant ({', '.join(variants)}) "
        f"retrained with the same budget, for {join_values(frame['label'])} (seeds {seeds_text(frame)}), "
        f"on {join_values(frame['bench'].map(bench_name) + '/' + frame['split'].astype(str))}; "
        "bands: 95% CI."
    )
    cols = [
        "label",
        "format",
        "seed",
        "variant",
        "step",
        "bench",
        "split",
        "pass_at_1",
        "ci_low",
        "ci_high",
    ]
    data = frame[[c for c in cols if c in frame.columns]].sort_values(["label", "variant", "step"])
    return Made(fig, caption, data.reset_index(drop=True), width, 480)
