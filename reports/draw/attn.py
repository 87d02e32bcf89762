"""Figures of attention between spans (diag attn: attn.parquet, attribution.parquet): the
span×span mass per model and per layer, CoT↔code attention per layer, and attribution scores.

    from reports.draw.attn import attn_heatmap
    made = attn_heatmap(ResultSet.load(["demo_out"]))   # Made(fig, caption, data) or Skip
"""

from __future__ import annotations

from reports.draw.common import Made, apply_layout, ci_band, label_color, label_dash, plotly_go
from reports.figure_data import (
    Skip,
    attn_spans,
    cot_code_attn_per_layer,
    final_attn,
    final_rows,
    join_values,
    run_inputs,
    seeds_text,
    span_matrix,
)
from reports.results import ResultSet, sort_labels


def attn_heatmap(rs: ResultSet) -> Made:
    from plotly.subplots import make_subplots

    frame = final_attn(rs)
    labels = sort_labels(frame["label"])
    srcs, dsts = attn_spans(frame)
    go = plotly_go()
    # plotly refuses spacing >= 1 / (cols - 1): shrink it past 12 models
    spacing = min(0.08, 0.5 / max(1, len(labels) - 1))
    fig = make_subplots(rows=1, cols=len(labels), subplot_titles=labels, horizontal_spacing=spacing)
    rows = []
    for i, label in enumerate(labels, start=1):
        sub = frame[frame["label"] == label]
        z = span_matrix(sub, srcs, dsts)
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=[f"→ {s}" for s in dsts],
                y=srcs,
                zmin=0,
                zmax=1,
                colorscale="Blues",
                texttemplate="%{z:.3f}",
                showscale=i == len(labels),
                colorbar=dict(title="mass"),
                hovertemplate="%{y} → %{x}: %{z:.4f}<extra>" + label + "</extra>",
            ),
            row=1,
            col=i,
        )
        for si, s in enumerate(srcs):
            for di, d in enumerate(dsts):
                rows.append(dict(label=label, src=s, dst=d, mass=z[si][di]))
    fig.update_yaxes(autorange="reversed")
    fig.update_yaxes(title_text="from (query span)", col=1)
    width = max(500, 380 * len(labels))
    apply_layout(fig, "Attention mass between spans (mean over layers and heads)", width, 440)
    import pandas as pd

    caption = (
        f"Share of attention that each query span puts on each key span, "
        f"mean over {frame['layer'].nunique()} layers and {frame['head'].nunique()} heads, "
        f"for {', '.join(labels)} (seeds {seeds_text(frame)}; n examples {join_values(frame['n_examples'])}; "
        f"{run_inputs(rs, frame) or 'attn runs'}). Each row sums to 1 over the key columns "
        "(other = fences, separators and EOS); blank cells: the key span comes after the query "
        "span (no attention under the causal mask) or the pair is absent."
    )
    return Made(fig, caption, pd.DataFrame(rows), width, 440)


def attn_layers(rs: ResultSet) -> Made:
    from plotly.subplots import make_subplots

    frame = final_attn(rs)
    labels = sort_labels(frame["label"])
    srcs, dsts = attn_spans(frame)
    layers = sorted(int(x) for x in frame["layer"].unique())
    titles = [f"{label} · layer {layer}" for label in labels for layer in layers]
    go = plotly_go()
    width = max(600, 260 * len(layers))
    height = 120 + 260 * len(labels)
    fig = make_subplots(
        rows=len(labels),
        cols=len(layers),
        subplot_titles=titles,
        horizontal_spacing=0.04,
        # ~70 px between rows: a fixed fraction breaks plotly past 9 rows (3 seeds x 4 formats)
        vertical_spacing=70 / height if len(labels) > 1 else 0.1,
    )
    rows = []
    for r, label in enumerate(labels, start=1):
        for c, layer in enumerate(layers, start=1):
            sub = frame[(frame["label"] == label) & (frame["layer"] == layer)]
            z = span_matrix(sub, srcs, dsts)
            fig.add_trace(
                go.Heatmap(
                    z=z,
                    x=dsts,
                    y=srcs,
                    zmin=0,
                    zmax=1,
                    colorscale="Blues",
                    texttemplate="%{z:.2f}",
                    showscale=(r == 1 and c == len(layers)),
                    colorbar=dict(title="mass"),
                    hovertemplate="%{y} → %{x}: %{z:.4f}<extra></extra>",
                ),
                row=r,
                col=c,
            )
            for si, s in enumerate(srcs):
                for di, d in enumerate(dsts):
                    rows.append(dict(label=label, layer=layer, src=s, dst=d, mass=z[si][di]))
    fig.update_yaxes(autorange="reversed")
    apply_layout(
        fig, "Attention mass between spans per layer (rows: from, columns: to)", width, height
    )
    import pandas as pd

    caption = (
        f"Span×span attention mass per layer (mean over {frame['head'].nunique()} heads) for "
        f"{', '.join(labels)} (seeds {seeds_text(frame)}; n examples {join_values(frame['n_examples'])})."
    )
    return Made(fig, caption, pd.DataFrame(rows), width, height)


def attn_cot_code(rs: ResultSet) -> Made:
    frame = final_attn(rs)
    per = cot_code_attn_per_layer(frame)
    labels = sort_labels(per["label"])
    go = plotly_go()
    fig = go.Figure()
    for label in labels:
        for (src, dst), sub in per[per["label"] == label].groupby(["src", "dst"], sort=True):
            sub = sub.sort_values("layer")
            color = label_color(label)
            name = f"{label}: {src} → {dst}"
            ci_band(fig, sub["layer"], sub["min"], sub["max"], color, name)
            fig.add_trace(
                go.Scatter(
                    x=sub["layer"],
                    y=sub["mean"],
                    mode="lines+markers",
                    name=name,
                    legendgroup=name,
                    line=dict(color=color, dash=label_dash(label, labels), width=2.5),
                )
            )
    apply_layout(
        fig,
        "Attention between CoT and code per layer (later span → earlier span)",
        900,
        500,
        xaxis=dict(title="layer", dtick=1),
        yaxis=dict(title="attention mass"),
    )
    caption = (
        "Per layer, the attention mass the later of the two spans puts on the earlier one "
        "(follow: code → CoT; precede: CoT → code), mean over heads; the band spans the heads' "
        "minimum to maximum; "
        f"for {', '.join(labels)} (seeds {seeds_text(frame)}; n examples {join_values(frame['n_examples'])})."
    )
    return Made(fig, caption, per.reset_index(drop=True), 900, 500)


def attribution(rs: ResultSet) -> Made:
    frame = final_rows(rs.table("attribution"))
    if frame.empty:
        raise Skip("attribution.parquet is empty")
    frame = frame.assign(pair=frame["src"].astype(str) + " → " + frame["dst"].astype(str))
    labels = sort_labels(frame["label"])
    methods = sorted(frame["method"].astype(str).unique())
    from plotly.subplots import make_subplots

    go = plotly_go()
    fig = make_subplots(rows=1, cols=len(methods), subplot_titles=methods)
    for i, method in enumerate(methods, start=1):
        for label in labels:
            sub = frame[(frame["label"] == label) & (frame["method"] == method)].sort_values("pair")
            fig.add_trace(
                go.Bar(
                    x=sub["pair"],
                    y=sub["score"],
                    name=label,
                    legendgroup=label,
                    showlegend=i == 1,
                    marker_color=label_color(label),
                ),
                row=1,
                col=i,
            )
    width = max(700, 450 * len(methods))
    apply_layout(fig, "Attribution between spans", width, 460, barmode="group")
    caption = (
        f"Attribution score of each source span to each target span by {', '.join(methods)} for "
        f"{', '.join(labels)} (n examples {join_values(frame['n_examples'])})."
    )
    cols = ["label", "method", "src", "dst", "score", "n_examples"]
    return Made(fig, caption, frame[cols].reset_index(drop=True), width, 460)
