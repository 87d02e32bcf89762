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


def test_token_matched_reads_each_run_at_the_same_loss_token_budget(tmp_path):
    """CoT runs see more loss tokens per step: token-matched pass@1 takes each run's checkpoint
    nearest the smallest final budget (precede step 10 vs wo step 20 here)."""
    from reports.replication import token_matched_pass_matrix
    from reports.results import ResultSet

    rng = np.random.default_rng(1)
    n = 50
    early, late = rng.random(n) < 0.3, rng.random(n) < 0.9
    wo_late = rng.random(n) < 0.5
    tokens = {"precede": {10: 100, 20: 200}, "wo": {10: 60, 20: 120}, "follow": {10: 101, 20: 121}}
    runs = (("precede", {10: early, 20: late}), ("wo", {10: early, 20: wo_late}))
    runs += (("follow", {10: early, 20: late}),)  # ends 1 token above the budget: still step 20
    for fmt, patterns in runs:
        _eval_run(tmp_path, f"eval/{fmt}-s0-test", fmt, 0, "test", patterns)
        path = tmp_path / f"eval/{fmt}-s0-test/samples.parquet"
        frame = pd.read_parquet(path)
        frame["loss_tokens_seen"] = frame["step"].map(tokens[fmt])
        frame.to_parquet(path)
    samples = ResultSet.load([tmp_path]).table("samples")
    mats, budget, picked = token_matched_pass_matrix(samples)
    assert budget == 120
    assert picked == {"precede-s0": (10, 100), "wo-s0": (20, 120), "follow-s0": (20, 121)}
    assert mats[("precede", "test")][0].to_numpy().mean() == pytest.approx(early.mean())
    assert mats[("wo", "test")][0].to_numpy().mean() == pytest.approx(wo_late.mean())
    table, comp, text = build(ReplicationConfig(runs=[str(tmp_path)], n_resamples=500))
    step_matched = table[(table.metric == "pass@1") & (table.format == "precede")].iloc[0]
    assert step_matched["mean"] == pytest.approx(late.mean())  # the last step, as before
    row = comp[(comp.metric == "pass@1-tokens:test") & (comp.b == "wo")].iloc[0]
    assert row["diff"] == pytest.approx(early.mean() - wo_late.mean())
    assert "token-matched" in text and "precede-s0 10 (100)" in text
