"""Figures of conditional perplexity (diag ppl, ppl.parquet): CoT and code log-PPL with their
gap, and cross-order scoring (each model on each format's text).

    from reports.draw.ppl import ppl_gap
    made = ppl_gap(ResultSet.load(["demo_out"]))   # Made(fig, caption, data) or Skip
"""

from __future__ import annotations

import math

from reports.draw.common import Made, apply_layout, plotly_go, span_mean_bars
from reports.figure_data import (
    Skip,
    cot_code_gaps,
    join_values,
    own_format_ppl,
    run_inputs,
    seeds_text,
    span_sorted,
    stats_opts,
)
from reports.palette import FORMAT_COLORS
from reports.results import ResultSet, sort_labels


def ppl_gap(rs: ResultSet) -> Made:
    import pandas as pd

    from plumbing.stats import mean_table

    own = own_format_ppl(rs)
    frame = own[own["span"].isin(["cot", "code"])]
    if frame.empty:
        raise Skip("ppl.parquet has no cot/code spans (formats without a CoT: seed, wo)")
    means = mean_table(frame, value="log_ppl", by=["label", "span"], opts=stats_opts())
    labels = sort_labels(means["label"])
    go = plotly_go()
    fig = go.Figure()
    for span in ("cot", "code"):
        mean = means[means["span"] == span].set_index("label")["mean"].reindex(labels)
        fig.add_trace(
            span_mean_bars(
                means,
                labels,
                span,
                customdata=[[math.exp(m) if m == m else None] for m in mean],
                hovertemplate="%{x} " + span + ": mean log-PPL %{y:.3f} (PPL %{customdata[0]:.2f})"
                "<extra></extra>",
            )
        )
    # The gap per example, log PPL(cot) - log PPL(code), boxed over each model.
    gaps = cot_code_gaps(own, labels)
    top = float(means["ci_high"].max())
    for gap in gaps.itertuples(index=False):
        fig.add_annotation(
            x=gap.label,
            y=top * 1.12,
            text=f"<b>gap {gap.gap:+.3f}</b><br>[{gap.ci_low:+.3f}, {gap.ci_high:+.3f}]",
            showarrow=False,
            font=dict(size=12, color="#b22222"),
            bgcolor="#fff5e6",
            bordercolor="#b22222",
        )
    apply_layout(
        fig,
        "Conditional perplexity of CoT and code (mean log-PPL per token, 95% CI)",
        900,
        540,
        barmode="group",
        yaxis=dict(title="mean log-PPL (nats/token)", range=[0, top * 1.3]),
        xaxis=dict(title="model (scored on its own format)"),
        legend=dict(orientation="h", y=-0.18),
    )
    n_ex = join_values(means.groupby("label")["n"].max())
    data = means.assign(kind="span_mean")
    if not gaps.empty:
        data = pd.concat([data, gaps.assign(kind="gap_cot_minus_code")])
    caption = (
        f"Mean per-token log-perplexity of the CoT and code spans under teacher forcing for "
        f"{', '.join(labels)} (seeds {seeds_text(frame)}), each scored on text in its own format "
        f"({run_inputs(rs, frame) or 'inputs as in the ppl runs'}; n examples {n_ex}). In follow "
        "the code is conditioned on prompt + CoT; in precede the CoT on prompt + code. The box "
        "over each model is the gap log-PPL(cot) − log-PPL(code), mean over examples with a 95% "
        "bootstrap CI."
    )
    return Made(fig, caption, data.reset_index(drop=True), 900, 540)


def ppl_cross_order(rs: ResultSet) -> Made:
    from plotly.subplots import make_subplots

    from plumbing.stats import mean_table

    frame = rs.table("ppl")
    if "score_format" not in frame.columns or frame["score_format"].nunique() < 2:
        raise Skip("ppl.parquet scores each model on one format only (no cross-order scoring)")
    frame = frame[frame["span"].isin(["cot", "code"])]
    means = mean_table(
        frame, value="log_ppl", by=["label", "score_format", "span"], opts=stats_opts()
    )
    labels = sort_labels(means["label"])
    score_formats = [f for f in FORMAT_COLORS if f in set(means["score_format"])]
    spans = span_sorted(means["span"])
    fig = make_subplots(rows=1, cols=len(spans), subplot_titles=[f"{s} span" for s in spans])
    go = plotly_go()
    zmax = float(means["mean"].max())
    for i, span in enumerate(spans, start=1):
        sub = means[means["span"] == span]
        z = [
            [
                sub[(sub["label"] == lab) & (sub["score_format"] == sf)]["mean"].mean()
                for sf in score_formats
            ]
            for lab in labels
        ]
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=[f"text: {f}" for f in score_formats],
                y=labels,
                zmin=0,
                zmax=zmax,
                colorscale="Viridis",
                texttemplate="%{z:.3f}",
                showscale=i == len(spans),
                colorbar=dict(title="log-PPL"),
            ),
            row=1,
            col=i,
        )
    apply_layout(
        fig, "Cross-order scoring: mean log-PPL of each model on each format's text", 1000, 460
    )
    caption = (
        f"Mean per-token log-PPL of {', '.join(labels)} scored on the text of each format "
        f"({', '.join(score_formats)}), per span; n examples {join_values(means['n'])}."
    )
    return Made(fig, caption, means, 1000, 460)
