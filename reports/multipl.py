"""The MultiPL-E table: pass@1 per model (format) per language, the paper's cross-language
transfer, with bootstrap CIs and format-vs-format paired tests within each language.

    from reports.multipl import multipl_tables, markdown
    table, comparisons = multipl_tables(samples)      # samples: eval samples.parquet rows
    print(markdown(table, comparisons))

Input: the `samples` table of `diag eval` runs on `--bench multipl-e:LANG` (the language is the
bench's suffix); HumanEval runs (`--bench humaneval`) join as the Python column `py`, the
language the formats were trained in. A model is its format (seeds pooled, as in
reports/replication.py) or, for pre-generated samples (`--format raw`), its label. Each run is
read at its last evaluated step; pass@1 of a task is the mean over its samples.

table: one row per (language, model): mean pass@1, bootstrap CI over tasks of the
seed-averaged per-task pass rates, n (tasks), seeds. comparisons: every pair of models within a
language, paired over the tasks both have (`plumbing.stats.compare_pooled`: mean difference
a - b, its CI, the paired test's p-value), with a `language` column.

`diag report` writes them as multipl.csv, multipl_comparisons.csv and multipl.md beside the
figures and shows them in report.html (`report_section`).
"""

from __future__ import annotations

import html
import itertools
from pathlib import Path
from typing import Any

from reports.replication import _fmt_key, compare_task_matrices, final_pass_matrix

BENCH_PREFIX = "multipl-e:"
PYTHON_BENCHES = {"humaneval": "py"}  # benches read as the Python column
LANGUAGE_ORDER = ("py", "cpp", "java", "js", "sh", "rs", "php")


def _lang_key(lang: str) -> tuple[int, str]:
    return (LANGUAGE_ORDER.index(lang) if lang in LANGUAGE_ORDER else len(LANGUAGE_ORDER), lang)


def multipl_samples(samples: Any) -> Any:
    """The MultiPL-E (and Python HumanEval) rows of a samples table, with `language` and
    `model` columns; empty when there are no MultiPL-E rows."""
    if samples.empty or "bench" not in samples.columns:
        return samples.iloc[0:0]
    bench = samples["bench"].astype(str)
    multipl = bench.str.startswith(BENCH_PREFIX)
    if not multipl.any():
        return samples.iloc[0:0]
    frame = samples[multipl | bench.isin(list(PYTHON_BENCHES))].copy()
    frame["language"] = [
        b[len(BENCH_PREFIX) :] if b.startswith(BENCH_PREFIX) else PYTHON_BENCHES[b]
        for b in frame["bench"].astype(str)
    ]
    fmt = frame["format"] if "format" in frame.columns else None
    frame["model"] = [
        str(label) if f is None or f != f or f == "raw" else str(f)
        for f, label in zip(fmt if fmt is not None else [None] * len(frame), frame["label"])
    ]
    return frame


def multipl_tables(samples: Any, opts: Any = None) -> tuple[Any, Any]:
    """(table, comparisons) of the module doc; both empty without MultiPL-E samples."""
    import pandas as pd

    from plumbing.stats import bootstrap_mean

    frame = multipl_samples(samples)
    if frame.empty:
        return pd.DataFrame(), pd.DataFrame()
    # final_pass_matrix groups by (format, split) at each label's last step per split: the
    # model and the language take those places
    keyed = frame.assign(format=frame["model"], split=frame["language"])
    mats = final_pass_matrix(keyed)
    rows, comparisons = [], []
    order = sorted(mats, key=lambda key: (_lang_key(key[1]), _fmt_key(key[0]), key[0]))
    for model, lang in order:
        mat = mats[(model, lang)]
        est = bootstrap_mean(mat.mean(axis=1).to_numpy(float), opts)
        rows.append(
            {
                "language": lang,
                "model": model,
                "mean": est.mean,
                "ci_low": est.ci_low,
                "ci_high": est.ci_high,
                "n": est.n,
                "seeds": mat.shape[1],
            }
        )
    for lang in sorted({lang for _, lang in mats}, key=_lang_key):
        models = [m for m, lg in order if lg == lang]
        for a, b in itertools.combinations(models, 2):
            ma, mb = mats[(a, lang)], mats[(b, lang)]
            if len(ma.index.intersection(mb.index)) == 0:
                continue
            row = compare_task_matrices(ma, mb, f"pass@1:{lang}", a, b, opts)
            comparisons.append({"language": lang, **row})
    return pd.DataFrame(rows), pd.DataFrame(comparisons)


def _cell(table: Any, model: str, lang: str) -> str:
    sel = table[(table["model"] == model) & (table["language"] == lang)]
    if sel.empty:
        return "–"
    r = sel.iloc[0]
    return f"{100 * r['mean']:.1f}% [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"


def _grid(table: Any) -> tuple[list[str], list[str]]:
    langs = sorted(table["language"].unique(), key=_lang_key)
    models = sorted(table["model"].unique(), key=lambda m: (_fmt_key(m), m))
    return langs, models


def markdown(table: Any, comparisons: Any) -> str:
    """Models as rows, languages as columns (pass@1 with its 95% CI), then the paired tests."""
    if table.empty:
        return ""
    langs, models = _grid(table)
    lines = [
        "| model | " + " | ".join(f"pass@1 {lang}" for lang in langs) + " |",
        "|" + " --- |" * (1 + len(langs)),
    ]
    lines += [f"| {m} | " + " | ".join(_cell(table, m, lg) for lg in langs) + " |" for m in models]
    lines += [
        "",
        "pass@1 at each run's last step; CIs: bootstrap over tasks of seed-averaged values.",
    ]
    if not comparisons.empty:
        lines += ["", "| language | comparison | diff (a - b) | 95% CI | p | tasks |"]
        lines.append("| --- | --- | --- | --- | --- | --- |")
        for _, r in comparisons.iterrows():
            lines.append(
                f"| {r['language']} | {r['a']} vs {r['b']} | {100 * r['diff']:+.1f} pts | "
                f"[{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}] | {r['p_value']:.3g} | "
                f"{int(r['n'])} |"
            )
    return "\n".join(lines) + "\n"


def _html(table: Any, comparisons: Any) -> str:
    esc = html.escape
    langs, models = _grid(table)
    parts = [
        '<section id="multipl"><h2>MultiPL-E: pass@1 per language</h2>',
        "<table class='runs'><tr><th>model</th>"
        + "".join(f"<th>{esc(lang)}</th>" for lang in langs)
        + "</tr>",
    ]
    for m in models:
        cells = "".join(f"<td>{esc(_cell(table, m, lg))}</td>" for lg in langs)
        parts.append(f"<tr><td>{esc(m)}</td>{cells}</tr>")
    parts.append("</table>")
    if not comparisons.empty:
        parts.append("<table class='runs'><tr><th>language</th><th>a vs b</th><th>diff</th>")
        parts.append("<th>95% CI</th><th>p</th><th>tasks</th></tr>")
        for _, r in comparisons.iterrows():
            parts.append(
                f"<tr><td>{esc(str(r['language']))}</td><td>{esc(f'{r.a} vs {r.b}')}</td>"
                f"<td>{100 * r['diff']:+.1f} pts</td><td>[{100 * r['ci_low']:+.1f}, "
                f"{100 * r['ci_high']:+.1f}]</td><td>{r['p_value']:.3g}</td>"
                f"<td>{int(r['n'])}</td></tr>"
            )
        parts.append("</table>")
    parts.append(
        "<p>pass@1 at each run's last step, 95% bootstrap CIs over tasks; paired tests within "
        "a language over the tasks both models have (multipl.csv, multipl_comparisons.csv, "
        "multipl.md).</p></section>"
    )
    return "\n".join(parts)


def report_section(samples: Any, out: Path) -> str:
    """For `diag report`: write multipl.csv, multipl_comparisons.csv and multipl.md into `out`
    and return report.html's section ("" and nothing written without MultiPL-E samples)."""
    table, comparisons = multipl_tables(samples)
    if table.empty:
        return ""
    table.to_csv(out / "multipl.csv", index=False, lineterminator="\n")
    comparisons.to_csv(out / "multipl_comparisons.csv", index=False, lineterminator="\n")
    (out / "multipl.md").write_text(markdown(table, comparisons), "utf-8")
    return _html(table, comparisons)
