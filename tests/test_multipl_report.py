"""The MultiPL-E per-language table (reports/multipl.py) and its place in `diag report`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plumbing.stats import StatsOptions
from reports.multipl import markdown, multipl_samples, multipl_tables

TASKS = [f"HumanEval_{i}_f" for i in range(10)]
# passes per (format, bench): task i passes when PASS[...] has it, for both seeds unless noted
PASS = {
    ("precede", "multipl-e:cpp"): set(range(8)),
    ("follow", "multipl-e:cpp"): set(range(4)),
    ("precede", "multipl-e:js"): set(range(5)),
    ("follow", "multipl-e:js"): set(range(5)),
    ("precede", "humaneval"): set(range(9)),
    ("follow", "humaneval"): set(range(6)),
}


def samples_frame() -> pd.DataFrame:
    rows = []
    for (fmt, bench), passing in PASS.items():
        for seed in (0, 1):
            for step in (4, 8):  # the last step (8) is read; step 4 passes nothing
                for i, task in enumerate(TASKS):
                    passed = step == 8 and i in passing
                    if fmt == "follow" and bench == "multipl-e:js" and seed == 1 and i == 0:
                        passed = False  # one seed differs: seed-averaged 0.5 on this task
                    rows.append({
                        "label": f"{fmt}-s{seed}", "format": fmt, "seed": seed, "step": step,
                        "bench": bench, "split": "test", "task_id": task, "passed": passed,
                    })  # fmt: skip
    # another benchmark's rows are left out
    rows.append({"label": "precede-s0", "format": "precede", "seed": 0, "step": 8,
                 "bench": "mbpp", "split": "test", "task_id": "m1", "passed": True})  # fmt: skip
    return pd.DataFrame(rows)


def test_per_language_table_with_cis_and_paired_tests():
    opts = StatsOptions(n_resamples=500, seed=0)
    table, comp = multipl_tables(samples_frame(), opts)
    got = {(r.language, r.model): (r.mean, r.n, r.seeds) for r in table.itertuples()}
    assert got == {
        ("py", "precede"): (0.9, 10, 2), ("py", "follow"): (0.6, 10, 2),
        ("cpp", "precede"): (0.8, 10, 2), ("cpp", "follow"): (0.4, 10, 2),
        ("js", "precede"): (0.5, 10, 2), ("js", "follow"): (0.45, 10, 2),
    }  # fmt: skip
    assert list(table["language"]) == ["py", "py", "cpp", "cpp", "js", "js"]
    assert (table["ci_low"] <= table["mean"]).all() and (table["mean"] <= table["ci_high"]).all()
    cpp = table[(table["language"] == "cpp") & (table["model"] == "precede")].iloc[0]
    assert 0.4 <= cpp["ci_low"] < 0.8 < cpp["ci_high"] <= 1.0
    assert list(comp["language"]) == ["py", "cpp", "js"]
    by_lang = comp.set_index("language")
    assert (by_lang.loc["cpp", "a"], by_lang.loc["cpp", "b"]) == ("precede", "follow")
    assert by_lang.loc["cpp", "diff"] == pytest.approx(0.4)
    assert by_lang.loc["js", "diff"] == pytest.approx(0.05)
    assert by_lang.loc["cpp", "p_value"] < by_lang.loc["js", "p_value"]
    assert np.all(comp["n"] == 10)
    text = markdown(table, comp)
    assert text.splitlines()[0] == "| model | pass@1 py | pass@1 cpp | pass@1 js |"
    assert "| precede | 90.0% [" in text and "| cpp | precede vs follow | +40.0 pts |" in text


def test_raw_samples_are_keyed_by_label_and_no_multipl_gives_nothing():
    frame = samples_frame()
    frame["format"] = "raw"
    keyed = multipl_samples(frame)
    assert set(keyed["model"]) == {"precede-s0", "precede-s1", "follow-s0", "follow-s1"}
    table, _ = multipl_tables(
        frame[frame["label"].str.endswith("s0")], StatsOptions(n_resamples=200)
    )
    assert len(table) == 2 * 3 and set(table["seeds"]) == {1}
    only_he = frame[frame["bench"] == "humaneval"]
    assert multipl_tables(only_he)[0].empty


def test_report_writes_the_table_and_section(tmp_path):
    from plumbing import Manifest
    from reports.report import ReportConfig, main

    run = tmp_path / "runs" / "eval-multipl"
    run.mkdir(parents=True)
    samples_frame().to_parquet(run / "samples.parquet", index=False)
    Manifest("eval", run, config={"bench": "multipl-e:cpp"}).finish()
    result = main(
        ReportConfig(runs=[str(tmp_path / "runs")], out=str(tmp_path / "rep"), images=False)
    )
    assert result["tables"] == ["multipl"]
    csv = pd.read_csv(tmp_path / "rep" / "multipl.csv")
    assert len(csv) == 6 and set(csv["language"]) == {"py", "cpp", "js"}
    assert (tmp_path / "rep" / "multipl.md").read_text().startswith("| model | pass@1 py |")
    page = (tmp_path / "rep" / "report.html").read_text()
    assert '<section id="multipl"><h2>MultiPL-E: pass@1 per language</h2>' in page
    assert "<td>80.0% [" in page
