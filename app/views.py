"""The dashboard's pages (Overview, Examples, Attention, Curves), each a function of a ResultSet.

    render_overview(rs)                      # results table, headline differences with CIs
    render_examples(rs, roots, fp)           # tokens colored by KL to base / NLL, per format
    render_attention(rs)                     # span x span mass per layer / head; saved patterns
    render_curves(rs)                        # valloss + KL, ablations, pass@1 over checkpoints, loss

Figures come from `reports.figures` (the functions `diag report` draws) and tables from
`reports.figure_data` (the numbers those figures draw), so a figure and the dashboard show the
same numbers. A page whose result file is missing says which `diag` command makes it.
`tokens_html` (pure, tested) renders one model's tokens as colored HTML.
"""

from __future__ import annotations

import html
import math
from typing import Any

import streamlit as st

from app import data
from reports.figure_data import (
    Skip,
    attn_spans,
    bench_name,
    final_pass1,
    final_pass1_by_difficulty,
    final_rows,
    fmt_ci,
    label_format,
    paired_comparisons,
    pass1_table,
    span_matrix,
    span_sorted,
)
from reports.figures import FIGURES
from reports.palette import SPAN_COLORS
from reports.results import TABLES, ResultSet, sort_labels

PAGES = ("Overview", "Examples", "Attention", "Curves")
TOKEN_VALUES = {"KL to base": ("kl", (214, 39, 40)), "NLL": ("nll", (31, 119, 180))}


def missing_note(rs: ResultSet, table: str) -> None:
    """One info box: which file is missing and the exact command that makes it."""
    spec = TABLES[table]
    st.info(f"No `{spec.pattern}` under the runs ({spec.what}). Make it with:\n\n`{spec.how}`")


def show_figure(rs: ResultSet, name: str, key: str | None = None) -> Any:
    """Draw a registered report figure (or say what is missing); returns its Made or None."""
    spec = FIGURES[name]
    missing = spec.missing(rs)
    if missing:
        for table in missing:
            missing_note(rs, table)
        return None
    try:
        made = spec.func(rs)
    except Skip as why:
        st.info(f"{spec.title}: {why}")
        return None
    st.plotly_chart(made.fig, key=key or f"fig-{name}", config={"displaylogo": False})
    st.caption(made.caption)
    return made


# ---------------------------------------------------------------------------------------------
# overview


def _pass1_frame(rs: ResultSet) -> Any:
    frame = pass1_table(final_pass1(rs))
    frame["bench"] = frame["bench"].map(bench_name)
    frame["pass@1 [95% CI]"] = [
        fmt_ci(m, lo, hi)
        for m, lo, hi in zip(frame["pass_at_1"], frame["ci_low"], frame["ci_high"])
    ]
    return frame


def render_overview(rs: ResultSet, roots: tuple[str, ...], fp: Any) -> None:
    st.header("Overview")
    st.caption(
        f"{len(rs.runs)} runs · models: {', '.join(rs.labels()) or 'none'} · "
        f"tables: {', '.join(t for t in TABLES if rs.has(t)) or 'none'}"
    )
    st.subheader("Results: pass@1 of the final models")
    if not rs.has("pass_at_k"):
        missing_note(rs, "pass_at_k")
    else:
        try:
            frame = _pass1_frame(rs)
        except Skip as why:
            st.info(str(why))
        else:
            st.dataframe(
                frame[["label", "bench", "split", "step", "pass_at_1", "ci_low", "ci_high",
                       "n_tasks", "pass@1 [95% CI]"]],
                hide_index=True,
                key="results-table",
            )  # fmt: skip
            _pass1_difference(rs, roots, fp)
        try:
            diff = pass1_table(final_pass1_by_difficulty(rs))
        except Skip:
            pass
        else:
            diff["bench"] = diff["bench"].map(bench_name)
            st.markdown("**By difficulty**")
            st.dataframe(diff, hide_index=True, key="difficulty-table")
    st.subheader("Headline differences (paired, 95% CI)")
    if not rs.has("comparisons"):
        missing_note(rs, "comparisons")
    else:
        try:
            comp = paired_comparisons(rs)
        except Skip as why:
            st.info(str(why))
        else:
            _comparisons(comp)
    st.subheader("Conditional perplexity of CoT and code")
    show_figure(rs, "ppl_gap", key="overview-ppl")


HEADLINE_METRICS = ("log_ppl:gap", "log_ppl:code", "log_ppl:cot", "kl_mean:cot", "kl_mean:code",
                    "attn:second->first")  # fmt: skip


def own_format_side(side: Any) -> bool:
    """A comparison side scored on its own format's text: 'follow-s0[follow]' yes,
    'follow-s0[precede]' no; sides without a scored format count as own."""
    text = str(side)
    if "[" not in text:
        return True
    label, scored = text.split("[", 1)
    return label_format(label.split("@")[0]) == scored.rstrip("]")


def _comparisons(comp: Any) -> None:
    own = st.checkbox("own-format scoring only", value=True, key="cmp-own")
    if own:
        comp = comp[comp["a"].map(own_format_side) & comp["b"].map(own_format_side)]
    metrics = sorted(comp["metric"].astype(str).unique())
    default = [m for m in metrics if m in HEADLINE_METRICS] or metrics[:6]
    chosen = st.multiselect("metrics", metrics, default=default, key="cmp-metrics")
    shown = comp[comp["metric"].isin(chosen)]
    st.dataframe(shown, hide_index=True, key="comparisons-table")
    significant = shown[(shown["ci_low"] > 0) | (shown["ci_high"] < 0)]
    st.caption(
        f"{len(significant)} of {len(shown)} shown differences have a 95% CI that excludes 0 "
        "(a − b: mean of per-example differences; paired bootstrap CI; paired test p)."
    )


def _pass1_difference(rs: ResultSet, roots: tuple[str, ...], fp: Any) -> None:
    """Pick two models: paired difference of per-task pass@1 (samples.parquet) with a CI."""
    samples = data.load_table(roots, fp, "samples")
    labels = sort_labels(samples["label"]) if not samples.empty else []
    if rs.keep_labels is not None:
        labels = [x for x in labels if x in rs.keep_labels]
    if len(labels) < 2:
        return
    from plumbing.stats import StatsOptions, compare_paired

    st.markdown("**Compare two models** (paired over tasks, final checkpoints)")
    cols = st.columns(2)
    follow = next((x for x in labels if label_format(x) == "follow"), labels[0])
    precede = next((x for x in labels if label_format(x) == "precede"), labels[-1])
    a = cols[0].selectbox("model A", labels, index=labels.index(precede), key="cmp-a")
    b = cols[1].selectbox("model B", labels, index=labels.index(follow), key="cmp-b")
    finals = samples[samples["label"].isin([a, b])]
    for (bench, split), sub in finals.groupby(["bench", "split"], sort=True):
        per = []
        for label in (a, b):
            rows = sub[sub["label"] == label]
            if rows.empty:
                break
            last = rows["step"].max() if rows["step"].notna().any() else None
            rows = rows[rows["step"] == last] if last is not None else rows
            per.append(rows.groupby("task_id")["passed"].mean())
        if len(per) < 2:
            continue
        joined = per[0].to_frame("a").join(per[1].to_frame("b"), how="inner")
        if joined.empty:
            continue
        row = compare_paired(
            joined["a"].to_numpy(float),
            joined["b"].to_numpy(float),
            metric="pass@1",
            name_a=a,
            name_b=b,
            opts=StatsOptions(n_resamples=2000, seed=0),
        )
        st.metric(
            f"pass@1 {a} − {b} on {bench_name(bench)}/{split}",
            f"{row['diff']:+.3f}",
            help=f"95% CI [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}], "
            f"{row['test']} p = {row['p_value']:.3g}, n = {row['n']} tasks",
        )
        st.caption(
            f"{a}: {row['mean_a']:.3f} · {b}: {row['mean_b']:.3f} · difference "
            f"{fmt_ci(row['diff'], row['ci_low'], row['ci_high'])} · {row['test']} "
            f"p = {row['p_value']:.3g} · n = {row['n']} tasks"
        )


# ---------------------------------------------------------------------------------------------
# examples


def tokens_html(
    tokens: Any, value: str, vmax: float, rgb: tuple[int, int, int], vmin: float = 0.0
) -> str:
    """One model's tokens (rows ordered by pos; columns token, span, kl, nll) as HTML: each span
    a bordered block with its name, each token shaded by (`value` - vmin) / (vmax - vmin)
    clipped to [0, 1], hover for the numbers."""
    r, g, b = rgb
    parts = ['<div class="cc-tokens">']
    current = None
    for row in tokens.itertuples(index=False):
        span = str(row.span)
        if span != current:
            if current is not None:
                parts.append("</div>")
            color = SPAN_COLORS.get(span, "#bbbbbb")
            parts.append(
                f'<div class="cc-span" data-span="{html.escape(span)}" '
                f'style="border-left:4px solid {color};margin:4px 0;padding:2px 6px;'
                f'white-space:pre-wrap;font-family:monospace;font-size:13px">'
                f'<span style="font-size:10px;color:{color};font-weight:bold">{html.escape(span)}'
                "</span> "
            )
            current = span
        v = getattr(row, value)
        if v is None or not math.isfinite(v) or vmax <= vmin:
            alpha = 0.0
        else:
            alpha = min(1.0, max(0.0, (v - vmin) / (vmax - vmin)))
        kl = getattr(row, "kl", float("nan"))
        nll = getattr(row, "nll", float("nan"))
        tip = f"{row.token!r} · pos {row.pos} · KL {kl:.4f} · NLL {nll:.3f}"
        text = html.escape(str(row.token)).replace("\n", "↵\n")
        parts.append(
            f'<span class="cc-tok" title="{html.escape(tip, quote=True)}" '
            f'style="background:rgba({r},{g},{b},{alpha:.3f})">{text}</span>'
        )
    if current is not None:
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def render_examples(rs: ResultSet, roots: tuple[str, ...], fp: Any) -> None:
    st.header("Example browser")
    all_tokens = data.load_table(roots, fp, "kl_tokens")
    if all_tokens.empty:
        missing_note(rs, "kl_tokens")
        return
    if rs.keep_labels is not None:
        all_tokens = all_tokens[all_tokens["label"].astype(str).isin(rs.keep_labels)]
    ids = sorted(all_tokens["example_id"].astype(str).unique())
    labels = sort_labels(all_tokens["label"])
    if not ids:
        st.info("kl_tokens.parquet has no rows for the models picked in the sidebar.")
        return
    c1, c2 = st.columns([2, 1])
    example = c1.selectbox("example", ids, key="example-id")
    shade = c2.radio("color tokens by", list(TOKEN_VALUES), horizontal=True, key="shade")
    defaults = [x for x in labels if label_format(x) in ("follow", "precede")] or labels[:2]
    chosen = st.multiselect("models (side by side)", labels, default=defaults, key="ex-models")
    tokens = data.example_tokens(roots, fp, example)
    tokens = tokens[tokens["label"].isin(chosen)]
    column, rgb = TOKEN_VALUES[shade]
    values = tokens[column].to_numpy(dtype=float)
    finite = sorted(v for v in values if math.isfinite(v))
    vmin = float(finite[int(0.01 * (len(finite) - 1))]) if finite else 0.0
    vmax = float(finite[int(0.99 * (len(finite) - 1))]) if finite else 0.0
    st.caption(
        f"Each token shaded by its {shade}: white at {vmin:.3f}, full color at {vmax:.3f} (the "
        "1st and 99th percentiles of the tokens shown, so differences stand out; hover a token "
        "for its values). Blocks mark the spans."
    )
    if not chosen:
        return
    _completions(roots, fp, example, chosen)
    cols = st.columns(len(chosen))
    for col, label in zip(cols, chosen):
        sub = tokens[tokens["label"] == label]
        with col:
            st.markdown(f"**{label}**")
            _example_numbers(rs, label, example)
            if sub.empty:
                st.info(f"no tokens of {example} for {label}")
                continue
            st.html(tokens_html(sub, column, vmax, rgb, vmin=vmin))


def _completions(roots: tuple[str, ...], fp: Any, example: str, labels: list[str]) -> None:
    """What each model generated for this task (samples.parquet), when it was evaluated on it."""
    samples = data.load_table(roots, fp, "samples")
    if samples.empty:
        return
    sub = samples[(samples["task_id"].astype(str) == example) & samples["label"].isin(labels)]
    if sub.empty:
        return
    with st.expander(f"generated completions for {example} ({len(sub)} samples)"):
        for r in sub.sort_values(["label", "step", "sample"], na_position="last").itertuples():
            step = "" if r.step is None or r.step != r.step else f" step {int(r.step)}"
            st.markdown(f"**{r.label}{step}** · sample {r.sample} · `{r.status}`")
            st.code(str(r.completion), language=None)


def _example_numbers(rs: ResultSet, label: str, example: str) -> None:
    """Per-span numbers of this example: mean KL (kl.parquet), log-PPL (ppl.parquet)."""
    rows = []
    if rs.has("kl"):
        kl = rs.table("kl")
        sub = kl[(kl["label"] == label) & (kl["example_id"].astype(str) == example)]
        for r in sub.itertuples(index=False):
            rows.append({"span": r.span, "metric": "mean KL", "value": round(float(r.kl_mean), 5)})
    if rs.has("ppl"):
        ppl = rs.table("ppl")
        sub = ppl[(ppl["label"] == label) & (ppl["example_id"].astype(str) == example)]
        if "score_format" in sub.columns:
            sub = sub[sub["score_format"].fillna(sub["format"]) == sub["format"]]
        for r in sub.itertuples(index=False):
            rows.append({"span": r.span, "metric": "log-PPL", "value": round(float(r.log_ppl), 4)})
    if rows:
        import pandas as pd

        frame = pd.DataFrame(rows)
        order = span_sorted(frame["span"])
        frame = frame.assign(_o=frame["span"].map(order.index)).sort_values(["metric", "_o"])
        st.dataframe(frame.drop(columns="_o"), hide_index=True, key=f"ex-num-{label}")


# ---------------------------------------------------------------------------------------------
# attention


def render_attention(rs: ResultSet) -> None:
    st.header("Attention")
    if not rs.has("attn"):
        missing_note(rs, "attn")
        return
    frame = final_rows(rs.table("attn"))
    labels = sort_labels(frame["label"])
    layers = sorted(int(x) for x in frame["layer"].unique())
    heads = sorted(int(x) for x in frame["head"].unique())
    c1, c2 = st.columns(2)
    layer = c1.select_slider("layer", ["all", *layers], value="all", key="attn-layer")
    head = c2.select_slider("head", ["all", *heads], value="all", key="attn-head")
    sub = frame
    if layer != "all":
        sub = sub[sub["layer"] == layer]
    if head != "all":
        sub = sub[sub["head"] == head]
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    srcs, dsts = attn_spans(frame)
    fig = make_subplots(rows=1, cols=len(labels), subplot_titles=labels)
    rows = []
    for i, label in enumerate(labels, start=1):
        z = span_matrix(sub[sub["label"] == label], srcs, dsts)  # [src][dst], NaN: masked
        rows += [
            {"label": label, "src": s, "dst": d, "mass": z[si][di]}
            for si, s in enumerate(srcs)
            for di, d in enumerate(dsts)
        ]
        fig.add_trace(
            go.Heatmap(
                z=z, x=dsts, y=srcs, zmin=0, zmax=1, colorscale="Blues",
                texttemplate="%{z:.3f}", showscale=i == len(labels),
            ),
            row=1,
            col=i,
        )  # fmt: skip
    import pandas as pd

    table = pd.DataFrame(rows).dropna(subset=["mass"])
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        height=380,
        margin=dict(l=60, r=20, t=50, b=40),
        title=f"span × span mass · layer {layer} · head {head} (rows: from, columns: to)",
    )
    st.plotly_chart(fig, key="attn-heatmap", config={"displaylogo": False})
    st.dataframe(table, hide_index=True, key="attn-table")
    st.caption(
        f"Mean over {'all layers' if layer == 'all' else f'layer {layer}'} and "
        f"{'all heads' if head == 'all' else f'head {head}'}; pairs hidden by the causal mask "
        "(the key span comes later) are left out."
    )
    st.subheader("Per-layer attention between CoT and code")
    show_figure(rs, "attn_cot_code", key="attn-curve")
    st.subheader("Saved token-level patterns")
    if not rs.has("patterns"):
        missing_note(rs, "patterns")
        return
    _render_pattern(rs)


def _render_pattern(rs: ResultSet) -> None:
    import plotly.graph_objects as go

    index = rs.table("patterns")
    choices = [
        f"{r.label} · {r.example_id}"
        for r in index.sort_values(["label", "example_id"]).itertuples()
    ]
    pick = st.selectbox("saved example", choices, key="pattern-pick")
    row = index.sort_values(["label", "example_id"]).iloc[choices.index(pick)]
    run = next(r for r in rs.runs if r.name == row["run"])
    arrays = data.load_pattern(str(run.path / row["path"]))
    n_layers = int(arrays["mean_heads"].shape[0])
    c1, c2 = st.columns(2)
    layer = c1.slider("pattern layer", 0, n_layers - 1, 0, key="pattern-layer")
    head_opts = ["mean"]
    if "per_head" in arrays:
        head_opts += list(range(int(arrays["per_head"].shape[1])))
    head = c2.select_slider("pattern head", head_opts, value="mean", key="pattern-head")
    pattern = (
        arrays["mean_heads"][layer] if head == "mean" else arrays["per_head"][layer, int(head)]
    ).astype(float)  # [seq, seq]
    tokens = [f"{i}:{t!r}" for i, t in enumerate(arrays["tokens"].tolist())]
    fig = go.Figure(go.Heatmap(z=pattern, x=tokens, y=tokens, colorscale="Viridis", zmin=0, zmax=1))
    # span boundaries: a line wherever the span id changes
    span_ids = arrays["span_ids"].tolist()
    names = arrays["span_names"].tolist()
    for i in range(1, len(span_ids)):
        if span_ids[i] != span_ids[i - 1]:
            for kind in ("x", "y"):
                fig.add_shape(
                    type="line",
                    **{f"{kind}0": i - 0.5, f"{kind}1": i - 0.5},
                    **{("y" if kind == "x" else "x") + "0": -0.5},
                    **{("y" if kind == "x" else "x") + "1": len(span_ids) - 0.5},
                    line=dict(color="white", width=1),
                )
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(height=650, title=f"{pick} · layer {layer} · head {head} (query rows)")
    st.plotly_chart(fig, key="pattern-heatmap", config={"displaylogo": False})
    spans = [names[s] if 0 <= s < len(names) else "pad" for s in span_ids]
    segments = []
    for i, s in enumerate(spans):
        if not segments or segments[-1][0] != s:
            segments.append([s, i, i])
        segments[-1][2] = i
    st.caption(
        "spans (token ranges): "
        + ", ".join(f"{s} {a}–{b}" for s, a, b in segments)
        + f" · {len(spans)} tokens; white lines mark span boundaries"
    )


# ---------------------------------------------------------------------------------------------
# curves


def render_curves(rs: ResultSet) -> None:
    st.header("Curves over training")
    for name, heading in (
        ("pass_at_1_checkpoints", "pass@1 over checkpoints"),
        ("kl_valloss", "Validation loss and KL to base"),
        ("ablation_curves", "Ablations"),
        ("train_loss", "Training loss"),
        ("pass_at_1_bases", "pass@1 over checkpoints per base model"),
    ):
        if not FIGURES[name].applies(rs):
            continue  # the cross-base curve: only when the runs hold several base models
        st.subheader(heading)
        show_figure(rs, name, key=f"curve-{name}")
