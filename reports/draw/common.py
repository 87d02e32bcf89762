"""What every figure is drawn with: the `Made` result, the layout, colors per model, CI bands,
tables and curves over training steps.

    from reports.draw.common import Made, apply_layout, curve_figure, plotly_go
    go = plotly_go()
    fig = go.Figure()
    apply_layout(fig, "title", 900, 500)
    return Made(fig, caption, data, 900, 500)

plotly is imported on first use (`plotly_go`), not when a module is imported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reports.figure_data import label_format
from reports.palette import FORMAT_COLORS, SPAN_COLORS
from reports.results import sort_labels

DASHES = ("solid", "dash", "dot", "dashdot", "longdash")
FONT = dict(family="DejaVu Sans, Arial, sans-serif", size=13)


@dataclass
class Made:
    fig: Any  # plotly.graph_objects.Figure
    caption: str  # what was measured and on what (models, n examples, split, seeds)
    data: Any  # pandas DataFrame: the numbers drawn
    width: int = 900
    height: int = 520


def plotly_go() -> Any:
    """plotly.graph_objects."""
    import plotly.graph_objects as go

    return go


def apply_layout(fig: Any, title: str, width: int, height: int, **kwargs: Any) -> None:
    """The layout every figure shares: title top left, white template, font, size, margins."""
    fig.update_layout(
        title=dict(text=title, x=0.01, xanchor="left"),
        template="plotly_white",
        font=FONT,
        width=width,
        height=height,
        margin=dict(l=70, r=30, t=70, b=60),
        **kwargs,
    )


def label_color(label: str) -> str:
    """The color of a model's format (brown for a format without one)."""
    return FORMAT_COLORS.get(label_format(label), "#8c564b")


def label_dash(label: str, labels: Sequence[str]) -> str:
    """Seeds of one format share a color; the n-th label of a format gets the n-th dash."""
    same = [x for x in labels if label_format(x) == label_format(label)]
    return DASHES[same.index(label) % len(DASHES)] if label in same else "solid"


def rgba(hex_color: str, alpha: float) -> str:
    """'#1f77b4', 0.15 -> 'rgba(31,119,180,0.15)'."""
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def empty_note(fig: Any, text: str, x: float, y: float) -> None:
    """A grey note at paper coordinates (x, y): marks a panel whose input is missing."""
    fig.add_annotation(
        text=text,
        showarrow=False,
        x=x,
        y=y,
        xref="paper",
        yref="paper",
        font=dict(size=12, color="#888"),
    )


def ci_band(fig: Any, x: Any, low: Any, high: Any, color: str, group: str, **where: Any) -> None:
    """A shaded CI band between low and high."""
    go = plotly_go()
    xs = list(x) + list(x)[::-1]
    ys = list(high) + list(low)[::-1]
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines",
            fill="toself",
            fillcolor=rgba(color, 0.15),
            line=dict(width=0),
            hoverinfo="skip",
            showlegend=False,
            legendgroup=group,
        ),
        **where,
    )


def ci_error_bars(means: Any) -> dict[str, Any]:
    """Asymmetric error bars from the mean to ci_low / ci_high of each row of `means`."""
    return dict(
        type="data",
        symmetric=False,
        array=(means["ci_high"] - means["mean"]).tolist(),
        arrayminus=(means["mean"] - means["ci_low"]).tolist(),
    )


def span_mean_bars(means: Any, labels: list[str], span: str, **extra: Any) -> Any:
    """One bar per model (in `labels` order): the mean of `span` with its CI, from the rows of
    a plumbing.stats.mean_table by label and span; `extra`: more go.Bar properties."""
    sub = means[means["span"] == span].set_index("label").reindex(labels)
    return plotly_go().Bar(
        name=f"{span} span",
        x=labels,
        y=sub["mean"],
        marker_color=SPAN_COLORS[span],
        error_y=ci_error_bars(sub),
        **extra,
    )


def table_figure(
    header: list[str],
    columns: list[list[Any]],
    fills: list[list[str]] | None,
    widths: list[float] | None = None,
) -> Any:
    """A plotly table: bold shaded header, one fill color per cell (white when `fills` is None)."""
    go = plotly_go()
    return go.Figure(
        go.Table(
            columnwidth=widths,
            header=dict(
                values=[f"<b>{h}</b>" for h in header],
                fill_color="#e8eef7",
                align="left",
                font=dict(size=13),
            ),
            cells=dict(
                values=columns,
                align="left",
                fill_color=fills or "white",
                font=dict(size=12),
                height=26,
            ),
        )
    )


def best_fills(values: list[float]) -> list[str]:
    """Cell fills of one table column: the largest value shaded green, the others white."""
    finite = [v for v in values if v is not None and not math.isnan(v)]
    best = max(finite) if finite else None
    return ["#dff0d8" if best is not None and v == best else "white" for v in values]


def curve_figure(
    data: Any, x: str, y: str, group: str, facet: str | None, title: str, ytitle: str
) -> tuple[Any, int]:
    """Lines of y over x per `group`, one panel per `facet` value, CI bands when present;
    returns (figure, width)."""
    from plotly.subplots import make_subplots

    go = plotly_go()
    facets = sorted(data[facet].astype(str).unique()) if facet else [""]
    fig = make_subplots(rows=1, cols=len(facets), subplot_titles=facets if facet else None)
    groups = (
        sort_labels(data[group]) if group == "label" else sorted(data[group].astype(str).unique())
    )
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    for c, fv in enumerate(facets, start=1):
        panel = data if not facet else data[data[facet].astype(str) == fv]
        for gi, gv in enumerate(groups):
            sub = panel[panel[group].astype(str) == gv].sort_values(x)
            if sub.empty:
                continue
            color = label_color(gv) if group == "label" else palette[gi % len(palette)]
            dash = label_dash(gv, groups) if group == "label" else "solid"
            if group == "variant" and gv == "none":  # the unablated run: the reference line
                color, dash = "#333333", "dash"
            if {"ci_low", "ci_high"} <= set(sub.columns) and sub["ci_low"].notna().any():
                ci_band(fig, sub[x], sub["ci_low"], sub["ci_high"], color, gv, row=1, col=c)
            fig.add_trace(
                go.Scatter(
                    x=sub[x],
                    y=sub[y],
                    mode="lines+markers",
                    name=gv,
                    legendgroup=gv,
                    showlegend=c == 1,
                    line=dict(color=color, dash=dash, width=2.5),
                ),
                row=1,
                col=c,
            )
    width = max(800, 420 * len(facets))
    apply_layout(fig, title, width, 480)
    fig.update_xaxes(title_text="training step")
    steps = sorted({float(v) for v in data[x].dropna()})
    if len(steps) <= 12:  # few checkpoints: tick exactly at them
        fig.update_xaxes(tickmode="array", tickvals=steps)
    fig.update_yaxes(title_text=ytitle, col=1)
    return fig, width
