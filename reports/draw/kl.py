"""The figure of KL to the base model (diag kl, kl.parquet) beside validation loss and KL over
checkpoints (diag valloss, valloss.parquet); either input alone draws its panels.

    from reports.draw.kl import kl_valloss
    made = kl_valloss(ResultSet.load(["demo_out"]))   # Made(fig, caption, data)
"""

from __future__ import annotations

from reports.draw.common import Made, apply_layout, ci_band, empty_note, label_color, plotly_go
from reports.figure_data import (
    final_rows,
    join_values,
    run_inputs,
    seeds_text,
    span_sorted,
    stats_opts,
)
from reports.palette import SPAN_COLORS
from reports.results import ResultSet, sort_labels


def kl_valloss(rs: ResultSet) -> Made:
    import pandas as pd
    from plotly.subplots import make_subplots

    from plumbing.stats import mean_table

    go = plotly_go()
    fig = make_subplots(
        rows=2,
        cols=2,
        specs=[[{"rowspan": 2}, {}], [None, {}]],
        column_widths=[0.5, 0.5],
        horizontal_spacing=0.1,
        vertical_spacing=0.14,
        subplot_titles=(
            "per-example mean KL(fine-tuned ‖ base)",
            "validation loss",
            "mean KL to base over checkpoints",
        ),
    )
    parts, captions = [], []
    if rs.has("kl"):
        kl = final_rows(rs.table("kl"))
        kl = kl[kl["span"].isin(["cot", "code"])] if kl["span"].isin(["cot", "code"]).any() else kl
        labels = sort_labels(kl["label"])
        for span in span_sorted(kl["span"]):
            sub = kl[kl["span"] == span]
            fig.add_trace(
                go.Violin(
                    x=sub["label"],
                    y=sub["kl_mean"],
                    name=f"{span} span",
                    legendgroup=f"kl-{span}",
                    line_color=SPAN_COLORS.get(span, "#555"),
                    box_visible=True,
                    meanline_visible=True,
                    points=False,
                    spanmode="hard",
                    scalegroup=span,
                ),
                row=1,
                col=1,
            )
        fig.update_layout(violinmode="group")
        fig.update_xaxes(categoryorder="array", categoryarray=labels, row=1, col=1)
        fig.update_yaxes(title_text="KL (nats/token)", row=1, col=1)
        means = mean_table(kl, value="kl_mean", by=["label", "span"], opts=stats_opts())
        parts.append(means.assign(panel="kl_per_example"))
        direction = join_values(kl["direction"]) if "direction" in kl.columns else "ft||base"
        captions.append(
            f"Left: distribution over examples of the mean token KL ({direction}) per span for "
            f"{', '.join(labels)} (seeds {seeds_text(kl)}; {run_inputs(rs, kl) or 'kl runs'}; "
            f"n examples {join_values(means['n'])}); box = quartiles, line = mean."
        )
    else:
        empty_note(fig, "no kl.parquet (run diag kl)", 0.2, 0.5)
        captions.append(f"Left panel missing: {rs.missing('kl')}.")
    if rs.has("valloss"):
        vl = rs.table("valloss").dropna(subset=["step"]).sort_values(["label", "step"])
        labels = sort_labels(vl["label"])
        for label in labels:
            for span in span_sorted(vl["span"]):
                sub = vl[(vl["label"] == label) & (vl["span"] == span)]
                if sub.empty:
                    continue
                dash = {"all": "solid", "cot": "dot", "code": "dash"}.get(span, "dashdot")
                name = f"{label} ({span})"
                color = label_color(label)
                for row, value, low, high in (
                    (1, "loss", "loss_ci_low", "loss_ci_high"),
                    (2, "kl_to_base", "kl_ci_low", "kl_ci_high"),
                ):
                    if value not in sub.columns or sub[value].isna().all():
                        continue
                    if {low, high} <= set(sub.columns) and sub[low].notna().any():
                        ci_band(fig, sub["step"], sub[low], sub[high], color, name, row=row, col=2)
                    fig.add_trace(
                        go.Scatter(
                            x=sub["step"],
                            y=sub[value],
                            mode="lines+markers",
                            name=name,
                            legendgroup=name,
                            showlegend=row == 1,
                            line=dict(color=color, dash=dash),
                        ),
                        row=row,
                        col=2,
                    )
        fig.update_yaxes(title_text="loss (nats/token)", row=1, col=2)
        fig.update_yaxes(title_text="KL (nats/token)", row=2, col=2)
        fig.update_xaxes(title_text="training step", row=2, col=2)
        # the base model is in the numbers only when there are several (labels name it then)
        dropped = ["run", "command", "checkpoint", *([] if rs.several_bases else ["base"])]
        drawn = vl.drop(columns=dropped, errors="ignore")
        parts.append(drawn.assign(panel="valloss"))
        captions.append(
            f"Right: validation loss (solid: all response tokens; dotted: CoT; dashed: code) and "
            f"mean KL to base at each saved checkpoint (step 0: the base) of {', '.join(labels)} "
            f"({run_inputs(rs, vl) or 'valloss runs'}; n examples "
            f"{join_values(vl['n_examples']) if 'n_examples' in vl else '–'}); bands: 95% CI."
        )
    else:
        empty_note(fig, "no valloss.parquet (run diag valloss)", 0.8, 0.8)
        empty_note(fig, "no valloss.parquet (run diag valloss)", 0.8, 0.2)
        captions.append(f"Right panels missing: {rs.missing('valloss')}.")
    apply_layout(fig, "KL to base and validation loss", 1150, 620, legend=dict(font=dict(size=11)))
    data = pd.concat(parts, ignore_index=True, sort=False)
    return Made(fig, " ".join(captions), data, 1150, 620)
