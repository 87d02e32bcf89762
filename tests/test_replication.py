"""The replication summary: pooled pass@1 per format with CIs and paired tests between formats."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from reports.replication import ReplicationConfig, build, final_pass_matrix, main, ordering


def _eval_run(root, name, fmt, seed, split, passed_by_step):
    """A finished eval run folder whose samples.parquet has the given pass pattern per step."""
    run = root / name
    run.mkdir(parents=True)
    rows = []
    for step, passed in passed_by_step.items():
        for i, ok in enumerate(passed):
            rows.append(
                dict(
                    label=f"{fmt}-s{seed}",
                    format=fmt,
                    seed=seed,
                    step=step,
                    split=split,
                    task_id=f"t{i}",
                    sample=0,
                    passed=bool(ok),
                    bench="jsonl:x",
                )
            )
    pd.DataFrame(rows).to_parquet(run / "samples.parquet")
    (run / "manifest.json").write_text(
        json.dumps({"command": "eval", "status": "finished", "config": {}})
    )


@pytest.fixture()
def study(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    truth = {"precede": 0.8, "follow": 0.5}
    for fmt, p in truth.items():
        for seed in (0, 1):
            final = rng.random(n) < p
            early = np.zeros(n, dtype=bool)  # an earlier checkpoint: must be ignored
            _eval_run(
                tmp_path, f"eval/{fmt}-s{seed}-test", fmt, seed, "test", {10: early, 20: final}
            )
    return tmp_path


def test_pooled_pass_at_1_and_paired_comparison(study):
    from reports.results import ResultSet

    passes = final_pass_matrix(ResultSet.load([study]).table("samples"))
    assert set(passes) == {("precede", "test"), ("follow", "test")}
    mat = passes[("precede", "test")]
    assert mat.shape == (60, 2)  # tasks x seeds, last step only
    table, comp, text = build(ReplicationConfig(runs=[str(study)], n_resamples=2000))
    row = table[(table.metric == "pass@1") & (table.format == "precede")].iloc[0]
    assert row["mean"] == pytest.approx(mat.to_numpy().mean())
    assert row["ci_low"] < row["mean"] < row["ci_high"] and row["seeds"] == 2 and row["n"] == 60
    (c,) = comp.to_dict("records")
    follow = passes[("follow", "test")].to_numpy().mean()
    assert c["a"] == "precede" and c["b"] == "follow"
    assert c["diff"] == pytest.approx(mat.to_numpy().mean() - follow)
    assert c["ci_low"] > 0 and c["p_value"] < 0.01  # 0.8 vs 0.5 over 60 tasks x 2 seeds
    assert "| precede |" in text and "precede > follow" in text
    tied = table.assign(mean=0.5)
    assert ordering(tied) == "precede = follow"


def test_main_writes_files(study, tmp_path):
    out = tmp_path / "summary"
    main(ReplicationConfig(runs=[str(study / "eval")], out=str(out), n_resamples=500))
    assert {"replication.parquet", "comparisons.parquet", "replication.md", "manifest.json"} <= {
        p.name for p in out.iterdir()
    }
