"""The paper's figures and tables, one function each, drawn from result tables with plotly.

    from reports.figures import FIGURES, Skip
    rs = ResultSet.load(["demo_out"])
    made = FIGURES["results_table"].func(rs)      # Made(fig, caption, data) or raises Skip(note)

Registry: `@figure(name, title, needs=(tables...))` adds a function to `FIGURES` (in the order of
the paper; `diag report --help` lists them). `needs` are result tables (reports.results.TABLES):
the report skips a figure with the exact command to run when one is missing; `needs_any` when any
one of several tables is enough (the figure marks the missing panel). A function raises `Skip`
when the tables exist but do not hold what it draws (e.g. one checkpoint only). `Made.data` is the
tidy frame of the numbers drawn (written beside the figure as CSV), so a figure can be checked
against its inputs. Every mean carries a seeded percentile-bootstrap CI over examples
(plumbing.stats), so the same inputs give byte-identical outputs. Nothing here imports torch;
the dashboard calls these same functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from reports.results import TABLES, ResultSet, sort_labels

SPAN_ORDER = ("sink", "prompt", "cot", "code", "glue", "eos", "other", "response", "gap", "all")
DIFFICULTY_ORDER = ("easy", "medium", "hard")
# One color per format (seeds of a format share it and differ by dash), colorblind-safe.
FORMAT_COLORS = {
    "base": "#4d4d4d",
    "seed": "#999999",
    "wo": "#9467bd",
    "follow": "#1f77b4",
    "precede": "#ff7f0e",
}
SPAN_COLORS = {"prompt": "#7f7f7f", "cot": "#2ca02c", "code": "#d62728", "response": "#17becf"}
DASHES = ("solid", "dash", "dot", "dashdot", "longdash")
FONT = dict(family="DejaVu Sans, Arial, sans-serif", size=13)
BOOTSTRAP_RESAMPLES = 2000  # figure CIs (seeded; the producing commands use their own setting)


class Skip(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The inputs exist but do not hold what this figure draws; the message says why."""


@dataclass
class Made:
    fig: Any  # plotly.graph_objects.Figure
    caption: str  # what was measured and on what (models, n examples, split, seeds)
    data: Any  # pandas DataFrame: the numbers drawn
    width: int = 900
    height: int = 520


@dataclass(frozen=True)
class FigureSpec:
    name: str
    title: str
    func: Callable[[ResultSet], Made]
    needs: tuple[str, ...] = ()
    needs_any: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        inputs = self.needs or self.needs_any
        joiner = " + " if self.needs else " and/or "
        return f"{self.title} (from {joiner.join(TABLES[t].pattern for t in inputs)})"

    def missing(self, rs: ResultSet) -> list[str]:
        """Tables this figure lacks (empty when it can be drawn)."""
        if self.needs:
            return [t for t in self.needs if not rs.has(t)]
        if self.needs_any and not any(rs.has(t) for t in self.needs_any):
            return list(self.needs_any)
        return []


FIGURES: dict[str, FigureSpec] = {}


def figure(
    name: str, title: str, needs: Sequence[str] = (), needs_any: Sequence[str] = ()
) -> Callable[[Callable[[ResultSet], Made]], Callable[[ResultSet], Made]]:
    for table in (*needs, *needs_any):
        if table not in TABLES:
            raise KeyError(f"figure {name}: unknown table {table!r}")

    def register(func: Callable[[ResultSet], Made]) -> Callable[[ResultSet], Made]:
        FIGURES[name] = FigureSpec(name, title, func, tuple(needs), tuple(needs_any))
        return func

    return register


# ---------------------------------------------------------------------------------------------
# helpers


def _go() -> Any:
    import plotly.graph_objects as go

    return go


def _layout(fig: Any, title: str, width: int, height: int, **kwargs: Any) -> None:
    fig.update_layout(
        title=dict(text=title, x=0.01, xanchor="left"),
        template="plotly_white",
        font=FONT,
        width=width,
        height=height,
        margin=dict(l=70, r=30, t=70, b=60),
        **kwargs,
    )


def label_format(label: str) -> str:
    return str(label).split("-", 1)[0]


def label_color(label: str) -> str:
    return FORMAT_COLORS.get(label_format(label), "#8c564b")


def label_dash(label: str, labels: Sequence[str]) -> str:
    """Seeds of one format share a color; the n-th label of a format gets the n-th dash."""
    same = [x for x in labels if label_format(x) == label_format(label)]
    return DASHES[same.index(label) % len(DASHES)] if label in same else "solid"


def rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def span_sorted(spans: Sequence[str]) -> list[str]:
    def key(s: str) -> tuple[int, str]:
        return (SPAN_ORDER.index(s) if s in SPAN_ORDER else len(SPAN_ORDER), str(s))

    return sorted({str(s) for s in spans}, key=key)


def fmt_ci(mean: float, low: float, high: float, digits: int = 3) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if low is None or high is None or any(math.isnan(float(v)) for v in (low, high)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _stats_opts() -> Any:
    from plumbing.stats import StatsOptions

    return StatsOptions(n_resamples=BOOTSTRAP_RESAMPLES, seed=0)


def _join(values: Any) -> str:
    vals = sorted({str(v) for v in values if v is not None and str(v) not in ("nan", "None")})
    return ", ".join(vals) if vals else "–"


def _seeds(frame: Any) -> str:
    if "seed" not in frame.columns:
        return "–"
    seeds = sorted({int(s) for s in frame["seed"].dropna()})
    return ", ".join(str(s) for s in seeds) if seeds else "–"


def run_inputs(rs: ResultSet, frame: Any) -> str:
    """'data X, split Y' from the manifests of the runs that produced `frame`."""
    if frame is None or frame.empty or "run" not in frame.columns:
        return ""
    names = set(frame["run"].unique())
    data, split = set(), set()
    for run in rs.runs:
        if run.name in names:
            cfg = run.config
            if cfg.get("data"):
                data.add(str(cfg["data"]).rsplit("/", 1)[-1])
            for key in ("split", "splits"):
                if cfg.get(key):
                    value = cfg[key]
                    split.update(value if isinstance(value, list) else [value])
    parts = []
    if data:
        parts.append(f"data {_join(data)}")
    if split:
        parts.append(f"split {_join(split)}")
    return ", ".join(parts)


def final_rows(frame: Any) -> Any:
    """Rows of each label's final model: step null (final/) when present, else its last step."""
    if "step" not in frame.columns:
        return frame
    keep = []
    for _label, group in frame.groupby("label", sort=True):
        if group["step"].isna().any():
            keep.append(group[group["step"].isna()])
        else:
            keep.append(group[group["step"] == group["step"].max()])
    import pandas as pd

    return pd.concat(keep, ignore_index=True) if keep else frame.iloc[0:0]


def _empty_note(fig: Any, text: str, x: float, y: float) -> None:
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


def _band(fig: Any, x: Any, low: Any, high: Any, color: str, group: str, **where: Any) -> None:
    """A shaded CI band between low and high."""
    go = _go()
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


# ---------------------------------------------------------------------------------------------
# tables


def _pass1(rs: ResultSet) -> Any:
    frame = rs.table("pass_at_k")
    frame = frame[frame["k"] == 1]
    # the same model evaluated twice on a bench (e.g. final/ alone and with --all-checkpoints):
    # keep one row, from the first run by name
    keys = [c for c in ("label", "step", "bench", "split", "group", "k") if c in frame.columns]
    frame = frame.drop_duplicates(subset=keys, keep="first")
    if frame.empty:
        raise Skip("pass_at_k.parquet has no k=1 rows")
    return frame


def _table_fig(
    header: list[str],
    columns: list[list[Any]],
    fills: list[list[str]] | None,
    widths: list[float] | None = None,
) -> Any:
    go = _go()
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


def _benches(frame: Any) -> list[tuple[str, str]]:
    pairs = frame[["bench", "split"]].drop_duplicates().astype(str)
    return sorted(map(tuple, pairs.to_numpy().tolist()))


def bench_name(bench: Any) -> str:
    """A benchmark as figures show it: `jsonl:/long/path/x.jsonl` -> `jsonl:x.jsonl`."""
    text = str(bench)
    if text.startswith("jsonl:"):
        return "jsonl:" + text[len("jsonl:") :].rsplit("/", 1)[-1]
    return text


def _highlight_best(values: list[float]) -> list[str]:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    best = max(finite) if finite else None
    return ["#dff0d8" if best is not None and v == best else "white" for v in values]


def _pass_column(
    sub: Any, labels: list[str], **ident: Any
) -> tuple[list[str], list[float], list[dict[str, Any]]]:
    """One table column (one bench/split, maybe one difficulty): cell texts, values for the
    highlight, and the tidy rows drawn."""
    cells, values, rows = [], [], []
    for label in labels:
        hit = sub[sub["label"] == label]
        if hit.empty:
            cells.append("–")
            values.append(float("nan"))
            continue
        r = hit.iloc[0]
        cells.append(f"{fmt_ci(r['pass_at_k'], r['ci_low'], r['ci_high'])} (n={r['n_tasks']})")
        values.append(float(r["pass_at_k"]))
        rows.append(
            dict(
                label=label,
                **ident,
                step=r.get("step"),
                pass_at_1=float(r["pass_at_k"]),
                ci_low=float(r["ci_low"]),
                ci_high=float(r["ci_high"]),
                n_tasks=int(r["n_tasks"]),
            )
        )
    return cells, values, rows


@figure("results_table", "pass@1 per format (final models)", needs=("pass_at_k",))
def results_table(rs: ResultSet) -> Made:
    import pandas as pd

    frame = final_rows(_pass1(rs))
    frame = frame[frame["group"] == "all"]
    if frame.empty:
        raise Skip("pass_at_k.parquet has no group=all rows at k=1")
    labels = sort_labels(frame["label"])
    benches = _benches(frame)
    header = ["model", "format", "seed"]
    columns: list[list[Any]] = [
        labels,
        [label_format(x) for x in labels],
        [_seeds(frame[frame["label"] == x]) for x in labels],
    ]
    fills = [["white"] * len(labels)] * 3
    rows = []
    for bench, split in benches:
        sub = frame[(frame["bench"].astype(str) == bench) & (frame["split"].astype(str) == split)]
        cells, values, drawn = _pass_column(sub, labels, bench=bench, split=split)
        rows += drawn
        header.append(f"{bench_name(bench)} / {split}")
        columns.append(cells)
        fills.append(_highlight_best(values))
    fig = _table_fig(header, columns, fills)
    height = 170 + 34 * len(labels)
    _layout(fig, "pass@1 per format (final models; 95% bootstrap CI over tasks)", 900, height)
    n_tasks = _join(frame["n_tasks"])
    caption = (
        f"pass@1 of the final model of {', '.join(labels)} (seeds {_seeds(frame)}) on "
        f"{'; '.join(f'{bench_name(b)}/{s}' for b, s in benches)} (n tasks: {n_tasks}); "
        "brackets: 95% "
        "bootstrap CI over tasks; the best per column is shaded."
    )
    return Made(fig, caption, pd.DataFrame(rows), 900, height)


@figure("difficulty_table", "pass@1 by difficulty (easy/medium/hard)", needs=("pass_at_k",))
def difficulty_table(rs: ResultSet) -> Made:
    import pandas as pd

    frame = final_rows(_pass1(rs))
    frame = frame[frame["group"].astype(str).str.startswith("difficulty=")]
    if frame.empty:
        raise Skip("no difficulty groups in pass_at_k.parquet (the benchmark has no difficulty)")
    frame = frame.assign(difficulty=frame["group"].astype(str).str.split("=", n=1).str[1])
    levels = sorted(
        frame["difficulty"].unique(),
        key=lambda d: (DIFFICULTY_ORDER.index(d) if d in DIFFICULTY_ORDER else 9, d),
    )
    labels = sort_labels(frame["label"])
    header, columns, fills, rows = ["model"], [labels], [["white"] * len(labels)], []
    for bench, split in _benches(frame):
        for level in levels:
            sub = frame[
                (frame["bench"].astype(str) == bench)
                & (frame["split"].astype(str) == split)
                & (frame["difficulty"] == level)
            ]
            if sub.empty:
                continue
            cells, values, drawn = _pass_column(
                sub, labels, bench=bench, split=split, difficulty=level
            )
            rows += drawn
            header.append(f"{bench_name(bench)}/{split}: {level}")
            columns.append(cells)
            fills.append(_highlight_best(values))
    width = max(900, 220 * len(header))
    height = 170 + 34 * len(labels)
    fig = _table_fig(header, columns, fills)
    _layout(fig, "pass@1 by difficulty (final models; 95% bootstrap CI)", width, height)
    caption = (
        f"pass@1 per difficulty level ({', '.join(levels)}) for {', '.join(labels)} "
        f"(seeds {_seeds(frame)}); n = tasks at that level; brackets: 95% bootstrap CI."
    )
    return Made(fig, caption, pd.DataFrame(rows), width, height)


@figure(
    "comparisons_table",
    "paired comparisons (differences with CIs and tests)",
    needs=("comparisons",),
)
def comparisons_table(rs: ResultSet) -> Made:
    frame = rs.table("comparisons")
    # two-sided rows only (summaries also hold one-model estimates with an empty `b`)
    frame = frame[frame["b"].notna() & (frame["b"].astype(str).str.len() > 0)].copy()
    if frame.empty:
        raise Skip("the summary_*.parquet files hold no two-model comparison")
    order = ["source", "metric", "a", "b", "mean_a", "mean_b", "diff", "ci_low", "ci_high"]
    frame = frame.sort_values(["source", "metric", "a", "b"], kind="stable").reset_index(drop=True)
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
    fig = _table_fig(
        header, columns, fills, widths=[1.3, 3.6, 1.8, 1.8, 0.9, 0.9, 2.2, 0.8, 0.9, 0.5]
    )
    height = 140 + 30 * len(frame)
    _layout(fig, "Paired comparisons (a − b, 95% CI; shaded: CI excludes 0)", 1200, height)
    caption = (
        f"{len(frame)} paired comparisons from {_join(frame['source'])}: mean of per-example "
        "differences a − b with a paired bootstrap CI and a paired test (p); n = pairs."
    )
    cols = [*order, "p_value", "test", "n"]
    return Made(fig, caption, frame[[c for c in cols if c in frame.columns]], 1400, height)


# ---------------------------------------------------------------------------------------------
# perplexity


def _own_ppl(rs: ResultSet) -> Any:
    """Final models scored on the text of their own training format."""
    frame = final_rows(rs.table("ppl"))
    if "score_format" in frame.columns:
        own = frame[frame["score_format"].fillna(frame["format"]) == frame["format"]]
        if not own.empty:
            frame = own
    return frame


@figure("ppl_gap", "conditional PPL of CoT and code per format, with the gap", needs=("ppl",))
def ppl_gap(rs: ResultSet) -> Made:
    import pandas as pd

    from plumbing.stats import bootstrap_mean, mean_table

    own = _own_ppl(rs)
    frame = own[own["span"].isin(["cot", "code"])]
    if frame.empty:
        raise Skip("ppl.parquet has no cot/code spans (formats without a CoT: seed, wo)")
    opts = _stats_opts()
    means = mean_table(frame, value="log_ppl", by=["label", "span"], opts=opts)
    labels = sort_labels(means["label"])
    go = _go()
    fig = go.Figure()
    for span in ("cot", "code"):
        sub = means[means["span"] == span].set_index("label").reindex(labels)
        fig.add_trace(
            go.Bar(
                name=f"{span} span",
                x=labels,
                y=sub["mean"],
                marker_color=SPAN_COLORS[span],
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=(sub["ci_high"] - sub["mean"]).tolist(),
                    arrayminus=(sub["mean"] - sub["ci_low"]).tolist(),
                ),
                customdata=[[math.exp(m) if m == m else None] for m in sub["mean"]],
                hovertemplate="%{x} " + span + ": mean log-PPL %{y:.3f} (PPL %{customdata[0]:.2f})"
                "<extra></extra>",
            )
        )
    # The gap per example, log PPL(cot) - log PPL(code): the producer's `gap` rows when present.
    if (own["span"] == "gap").any():
        gap_rows = own[own["span"] == "gap"][["label", "example_id", "log_ppl"]]
    else:
        wide = frame.pivot_table(
            index=["label", "example_id"], columns="span", values="log_ppl", aggfunc="first"
        ).dropna()
        gap_rows = (wide["cot"] - wide["code"]).rename("log_ppl").reset_index()
    gaps = []
    top = float(means["ci_high"].max())
    for label in labels:
        est = bootstrap_mean(gap_rows.loc[gap_rows["label"] == label, "log_ppl"], opts)
        if est.n == 0:
            continue
        gaps.append(
            dict(label=label, gap=est.mean, ci_low=est.ci_low, ci_high=est.ci_high, n=est.n)
        )
        fig.add_annotation(
            x=label,
            y=top * 1.12,
            text=f"<b>gap {est.mean:+.3f}</b><br>[{est.ci_low:+.3f}, {est.ci_high:+.3f}]",
            showarrow=False,
            font=dict(size=12, color="#b22222"),
            bgcolor="#fff5e6",
            bordercolor="#b22222",
        )
    _layout(
        fig,
        "Conditional perplexity of CoT and code (mean log-PPL per token, 95% CI)",
        900,
        540,
        barmode="group",
        yaxis=dict(title="mean log-PPL (nats/token)", range=[0, top * 1.3]),
        xaxis=dict(title="model (scored on its own format)"),
        legend=dict(orientation="h", y=-0.18),
    )
    n_ex = _join(means.groupby("label")["n"].max())
    data = means.assign(kind="span_mean")
    if gaps:
        data = pd.concat([data, pd.DataFrame(gaps).assign(kind="gap_cot_minus_code")])
    caption = (
        f"Mean per-token log-perplexity of the CoT and code spans under teacher forcing for "
        f"{', '.join(labels)} (seeds {_seeds(frame)}), each scored on text in its own format "
        f"({run_inputs(rs, frame) or 'inputs as in the ppl runs'}; n examples {n_ex}). In follow "
        "the code is conditioned on prompt + CoT; in precede the CoT on prompt + code. The box "
        "over each model is the gap log-PPL(cot) − log-PPL(code), mean over examples with a 95% "
        "bootstrap CI."
    )
    return Made(fig, caption, data.reset_index(drop=True), 900, 540)


@figure("ppl_cross_order", "cross-order scoring: each model on each format's text", needs=("ppl",))
def ppl_cross_order(rs: ResultSet) -> Made:
    from plumbing.stats import mean_table

    frame = rs.table("ppl")
    if "score_format" not in frame.columns or frame["score_format"].nunique() < 2:
        raise Skip("ppl.parquet scores each model on one format only (no cross-order scoring)")
    frame = frame[frame["span"].isin(["cot", "code"])]
    means = mean_table(
        frame, value="log_ppl", by=["label", "score_format", "span"], opts=_stats_opts()
    )
    labels = sort_labels(means["label"])
    score_formats = [f for f in FORMAT_COLORS if f in set(means["score_format"])]
    from plotly.subplots import make_subplots

    spans = span_sorted(means["span"])
    fig = make_subplots(rows=1, cols=len(spans), subplot_titles=[f"{s} span" for s in spans])
    go = _go()
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
    _layout(fig, "Cross-order scoring: mean log-PPL of each model on each format's text", 1000, 460)
    caption = (
        f"Mean per-token log-PPL of {', '.join(labels)} scored on the text of each format "
        f"({', '.join(score_formats)}), per span; n examples {_join(means['n'])}."
    )
    return Made(fig, caption, means, 1000, 460)


# ---------------------------------------------------------------------------------------------
# KL to base and validation loss


@figure(
    "kl_valloss",
    "KL to base per format beside validation loss over checkpoints",
    needs_any=("kl", "valloss"),
)
def kl_valloss(rs: ResultSet) -> Made:
    import pandas as pd
    from plotly.subplots import make_subplots

    from plumbing.stats import mean_table

    go = _go()
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
        means = mean_table(kl, value="kl_mean", by=["label", "span"], opts=_stats_opts())
        parts.append(means.assign(panel="kl_per_example"))
        direction = _join(kl["direction"]) if "direction" in kl.columns else "ft||base"
        captions.append(
            f"Left: distribution over examples of the mean token KL ({direction}) per span for "
            f"{', '.join(labels)} (seeds {_seeds(kl)}; {run_inputs(rs, kl) or 'kl runs'}; "
            f"n examples {_join(means['n'])}); box = quartiles, line = mean."
        )
    else:
        _empty_note(fig, "no kl.parquet (run diag kl)", 0.2, 0.5)
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
                        _band(fig, sub["step"], sub[low], sub[high], color, name, row=row, col=2)
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
        drawn = vl.drop(columns=["run", "command", "checkpoint"], errors="ignore")
        parts.append(drawn.assign(panel="valloss"))
        captions.append(
            f"Right: validation loss (solid: all response tokens; dotted: CoT; dashed: code) and "
            f"mean KL to base at each saved checkpoint (step 0: the base) of {', '.join(labels)} "
            f"({run_inputs(rs, vl) or 'valloss runs'}; n examples "
            f"{_join(vl['n_examples']) if 'n_examples' in vl else '–'}); bands: 95% CI."
        )
    else:
        _empty_note(fig, "no valloss.parquet (run diag valloss)", 0.8, 0.8)
        _empty_note(fig, "no valloss.parquet (run diag valloss)", 0.8, 0.2)
        captions.append(f"Right panels missing: {rs.missing('valloss')}.")
    _layout(fig, "KL to base and validation loss", 1150, 620, legend=dict(font=dict(size=11)))
    data = pd.concat(parts, ignore_index=True, sort=False)
    return Made(fig, " ".join(captions), data, 1150, 620)


# ---------------------------------------------------------------------------------------------
# attention


def _attn(rs: ResultSet) -> Any:
    frame = final_rows(rs.table("attn"))
    if frame.empty:
        raise Skip("attn.parquet is empty")
    return frame


def span_matrix(frame: Any, srcs: list[str], dsts: list[str]) -> list[list[float]]:
    """[src][dst] mean mass over the rows given (layers and heads); NaN for absent pairs and
    for pairs the causal mask hides (attn.parquet `visible` False: the key span comes later)."""
    if "visible" in frame.columns:
        frame = frame[frame["visible"].astype(bool)]
    table = frame.groupby(["src", "dst"])["mass"].mean()
    return [[float(table.get((s, d), float("nan"))) for d in dsts] for s in srcs]


def attn_spans(frame: Any) -> tuple[list[str], list[str]]:
    """(query spans, key spans): prompt, cot, code first; key-only columns (other, sink) last."""
    srcs = span_sorted(frame["src"].unique())
    dsts = span_sorted(frame["dst"].unique())
    return srcs, dsts


@figure(
    "attn_heatmap",
    "span×span attention mass per format (all layers and heads averaged)",
    needs=("attn",),
)
def attn_heatmap(rs: ResultSet) -> Made:
    from plotly.subplots import make_subplots

    frame = _attn(rs)
    labels = sort_labels(frame["label"])
    srcs, dsts = attn_spans(frame)
    go = _go()
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
    _layout(fig, "Attention mass between spans (mean over layers and heads)", width, 440)
    import pandas as pd

    caption = (
        f"Share of attention that each query span puts on each key span, "
        f"mean over {frame['layer'].nunique()} layers and {frame['head'].nunique()} heads, "
        f"for {', '.join(labels)} (seeds {_seeds(frame)}; n examples {_join(frame['n_examples'])}; "
        f"{run_inputs(rs, frame) or 'attn runs'}). Each row sums to 1 over the key columns "
        "(other = fences, separators and EOS); blank cells: the key span comes after the query "
        "span (no attention under the causal mask) or the pair is absent."
    )
    return Made(fig, caption, pd.DataFrame(rows), width, 440)


@figure("attn_layers", "span×span attention mass per layer (heads averaged)", needs=("attn",))
def attn_layers(rs: ResultSet) -> Made:
    from plotly.subplots import make_subplots

    frame = _attn(rs)
    labels = sort_labels(frame["label"])
    srcs, dsts = attn_spans(frame)
    layers = sorted(int(x) for x in frame["layer"].unique())
    titles = [f"{label} · layer {layer}" for label in labels for layer in layers]
    go = _go()
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
    _layout(fig, "Attention mass between spans per layer (rows: from, columns: to)", width, height)
    import pandas as pd

    caption = (
        f"Span×span attention mass per layer (mean over {frame['head'].nunique()} heads) for "
        f"{', '.join(labels)} (seeds {_seeds(frame)}; n examples {_join(frame['n_examples'])})."
    )
    return Made(fig, caption, pd.DataFrame(rows), width, height)


@figure("attn_cot_code", "per-layer attention between CoT and code", needs=("attn",))
def attn_cot_code(rs: ResultSet) -> Made:
    frame = _attn(rs)
    pairs = frame[
        ((frame["src"] == "code") & (frame["dst"] == "cot"))
        | ((frame["src"] == "cot") & (frame["dst"] == "code"))
    ]
    if pairs.empty:
        raise Skip("attn.parquet has no cot/code span pairs (formats without a CoT)")
    per = (
        pairs.groupby(["label", "src", "dst", "layer"])["mass"]
        .agg(["mean", "min", "max"])
        .reset_index()
    )
    # Causal attention only flows from the later span to the earlier one; keep those curves
    # (attn.parquet's `visible` says so; without it, pairs with no mass at all are dropped).
    if "visible" in pairs.columns:
        seen = pairs[pairs["visible"].astype(bool)][["label", "src", "dst"]].drop_duplicates()
        per = per.merge(seen, on=["label", "src", "dst"])
    else:
        per = per[per.groupby(["label", "src", "dst"])["mean"].transform("max") > 0]
    labels = sort_labels(per["label"])
    go = _go()
    fig = go.Figure()
    for label in labels:
        for (src, dst), sub in per[per["label"] == label].groupby(["src", "dst"], sort=True):
            sub = sub.sort_values("layer")
            color = label_color(label)
            name = f"{label}: {src} → {dst}"
            _band(fig, sub["layer"], sub["min"], sub["max"], color, name)
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
    _layout(
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
        f"for {', '.join(labels)} (seeds {_seeds(frame)}; n examples {_join(frame['n_examples'])})."
    )
    return Made(fig, caption, per.reset_index(drop=True), 900, 500)


@figure("attribution", "span-to-span attribution scores", needs=("attribution",))
def attribution(rs: ResultSet) -> Made:
    frame = final_rows(rs.table("attribution"))
    if frame.empty:
        raise Skip("attribution.parquet is empty")
    frame = frame.assign(pair=frame["src"].astype(str) + " → " + frame["dst"].astype(str))
    labels = sort_labels(frame["label"])
    methods = sorted(frame["method"].astype(str).unique())
    from plotly.subplots import make_subplots

    go = _go()
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
    _layout(fig, "Attribution between spans", width, 460, barmode="group")
    caption = (
        f"Attribution score of each source span to each target span by {', '.join(methods)} for "
        f"{', '.join(labels)} (n examples {_join(frame['n_examples'])})."
    )
    cols = ["label", "method", "src", "dst", "score", "n_examples"]
    return Made(fig, caption, frame[cols].reset_index(drop=True), width, 460)


@figure(
    "gradnorm",
    "gradient norm of the CoT and code losses, overall and per layer",
    needs=("gradnorm",),
)
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
    means = mean_table(overall, value="grad_norm", by=["label", "span"], opts=_stats_opts())
    labels = sort_labels(means["label"])
    go = _go()
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("‖∇θ L_span‖ (all parameters)", "per decoder layer"),
        horizontal_spacing=0.12,
    )
    for span in ("cot", "code"):
        sub = means[means["span"] == span].set_index("label").reindex(labels)
        fig.add_trace(
            go.Bar(
                name=f"{span} span",
                x=labels,
                y=sub["mean"],
                marker_color=SPAN_COLORS[span],
                legendgroup=span,
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=(sub["ci_high"] - sub["mean"]).tolist(),
                    arrayminus=(sub["mean"] - sub["ci_low"]).tolist(),
                ),
            ),
            row=1,
            col=1,
        )
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
    _layout(fig, "Gradient norm of each span's loss (95% CI)", 1100, 480, barmode="group")
    caption = (
        f"L2 norm of the gradient of the mean NLL over each span's tokens, per example, for "
        f"{', '.join(labels)} (seeds {_seeds(frame)}; n examples {_join(means['n'])}; "
        f"{run_inputs(rs, frame) or 'gradnorm runs'}): left, over all parameters (bars: mean, "
        "95% bootstrap CI over examples); right, per decoder layer (dotted: CoT, dashed: code)."
    )
    data = pd.concat(
        [means.assign(kind="overall"), per_layer.assign(kind="per_layer")], ignore_index=True
    )
    return Made(fig, caption, data, 1100, 480)


# ---------------------------------------------------------------------------------------------
# curves over training


def _curve_fig(
    data: Any, x: str, y: str, group: str, facet: str | None, title: str, ytitle: str
) -> Any:
    """Lines of y over x per `group`, one panel per `facet` value, CI bands when present."""
    from plotly.subplots import make_subplots

    go = _go()
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
                _band(fig, sub[x], sub["ci_low"], sub["ci_high"], color, gv, row=1, col=c)
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
    _layout(fig, title, width, 480)
    fig.update_xaxes(title_text="training step")
    steps = sorted({float(v) for v in data[x].dropna()})
    if len(steps) <= 12:  # few checkpoints: tick exactly at them
        fig.update_xaxes(tickmode="array", tickvals=steps)
    fig.update_yaxes(title_text=ytitle, col=1)
    return fig, width


@figure(
    "ablation_curves", "ablation: pass@1 over training steps per variant", needs=("ablate_curves",)
)
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
    fig, width = _curve_fig(
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
        f"retrained with the same budget, for {_join(frame['label'])} (seeds {_seeds(frame)}), "
        f"on {_join(frame['bench'].map(bench_name) + '/' + frame['split'].astype(str))}; "
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


@figure("train_loss", "training loss per format", needs=("train_log",))
def train_loss(rs: ResultSet) -> Made:
    frame = rs.table("train_log").dropna(subset=["loss"])
    if frame.empty:
        raise Skip("train_log.parquet has no loss rows")
    fig, width = _curve_fig(
        frame, "step", "loss", "label", None, "Training loss", "loss (nats/token)"
    )
    labels = sort_labels(frame["label"])
    steps = frame.groupby("label")["step"].max()
    caption = (
        f"Training loss (mean over logged steps, response tokens only) of {', '.join(labels)} "
        f"(seeds {_seeds(frame)}; {run_inputs(rs, frame) or 'train runs'}; "
        f"steps: {', '.join(f'{k} {int(v)}' for k, v in steps.items())})."
    )
    cols = [
        c
        for c in ("label", "format", "seed", "step", "loss", "learning_rate", "loss_tokens_seen")
        if c in frame.columns
    ]
    data = frame[cols].sort_values(["label", "step"]).reset_index(drop=True)
    return Made(fig, caption, data, width, 480)


@figure(
    "pass_at_1_checkpoints",
    "pass@1 over training checkpoints per format (main curve)",
    needs=("pass_at_k",),
)
def pass_at_1_checkpoints(rs: ResultSet) -> Made:
    frame = _pass1(rs)
    frame = frame[(frame["group"] == "all")].dropna(subset=["step"])
    steps = frame.groupby("label")["step"].nunique()
    frame = frame[frame["label"].isin(steps[steps > 1].index)]
    if frame.empty:
        raise Skip(
            "no model was evaluated at more than one checkpoint: "
            "run diag eval --all-checkpoints on the training runs"
        )
    frame = frame.assign(panel=frame["bench"].map(bench_name) + "/" + frame["split"].astype(str))
    fig, width = _curve_fig(
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
        f"pass@1 at every saved checkpoint of {', '.join(labels)} (seeds {_seeds(frame)}) on "
        f"{_join(frame['panel'])} (n tasks {_join(frame['n_tasks'])}); bands: 95% bootstrap CI "
        "over tasks."
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
