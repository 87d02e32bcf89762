"""The figure of gradient norms of the CoT and code losses (diag gradnorm, gradnorm.parquet),
over all parameters and per decoder layer.

    from reports.draw.gradnorm import gradnorm
    made = gradnorm(ResultSet.load(["demo_out"]))   # Made(fig, caption, data) or Skip
"""

from __future__ import annotations

from reports.draw.common import Made, apply_layout, label_color, plotly_go, span_mean_bars
from reports.figure_data import Skip, final_rows, join_values, run_inputs, seeds_text, stats_opts
from reports.results import ResultSet, sort_labels


def gradnorm(rs: ResultSet) -> Made:
    import pandas as pd
    from plotly.subplots import make_subplots

    from plumbing.stats import mean_table

    frame = final_rows(rs.table("gradnorm"))
    frame = frame[frame["span"].isin(["cot", "code"])]
    if frame.empty:
        raise Skip("gradnorm.parquet has no cot/code spans")
    overall = frame[frame["group"] == "all"]
    layers = frame[frame["group"].astype(str).str.startswith("layer.")]
    layers = layers.assign(layer=layers["group"].astype(str).str.split(".").str[1].astype(int))
    means = mean_table(overall, value="grad_norm", by=["label", "span"], opts=stats_opts())
    labels = sort_labels(means["label"])
    go = plotly_go()
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("‖∇θ L_span‖ (all parameters)", "per decoder layer"),
        horizontal_spacing=0.12,
    )
    for span in ("cot", "code"):
        fig.add_trace(span_mean_bars(means, labels, span, legendgroup=span), row=1, col=1)
    per_layer = layers.groupby(["label", "span", "layer"])["grad_norm"].mean().reset_index()
    for (label, span), sub in per_layer.groupby(["label", "span"], sort=True):
        sub = sub.sort_values("layer")
        fig.add_trace(
            go.Scatter(
                x=sub["layer"],
                y=sub["grad_norm"],
                mode="lines+markers",
                name=f"{label} ({span})",
                line=dict(color=label_color(label), dash="dot" if span == "cot" else "dash"),
            ),
            row=1,
            col=2,
        )
    fig.update_yaxes(title_text="gradient norm", col=1)
    fig.update_xaxes(title_text="layer", dtick=1, row=1, col=2)
    apply_layout(fig, "Gradient norm of each span's loss (95% CI)", 1100, 480, barmode="group")
    caption = (
        f"L2 norm of the gradient of the mean NLL over each span's tokens, per example, for "
        f"{', '.join(labels)} (seeds {seeds_text(frame)}; n examples {join_values(means['n'])}; "
        f"{run_inputs(rs, frame) or 'gradnorm runs'}): left, over all parameters (bars: mean, "
        "95% bootstrap CI over examples); right, per decoder layer (dotted: CoT, dashed: code)."
    )
    data = pd.concat(
        [means.assign(kind="overall"), per_layer.assign(kind="per_layer")], ignore_index=True
    )
    return Made(fig, caption, data, 1100, 480)
