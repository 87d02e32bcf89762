"""plumbing.stats against known answers: coverage, scipy's own p-values, degenerate inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from plumbing import InputError, stats
from plumbing.stats import StatsOptions


def test_bootstrap_ci_covers_the_true_mean_about_95_percent() -> None:
    rng = np.random.default_rng(123)
    opts = StatsOptions(n_resamples=1000, seed=7)
    trials, hits = 400, 0
    for _ in range(trials):
        x = rng.normal(loc=2.0, scale=3.0, size=50)
        est = stats.bootstrap_mean(x, opts)
        hits += est.ci_low <= 2.0 <= est.ci_high
    coverage = hits / trials
    # percentile bootstrap slightly under-covers at n=50; binomial sd over 400 trials ~0.011
    assert 0.90 <= coverage <= 0.98, coverage


def test_paired_ci_covers_the_true_difference() -> None:
    rng = np.random.default_rng(5)
    opts = StatsOptions(n_resamples=1000)
    trials, hits = 300, 0
    for _ in range(trials):
        shared = rng.normal(size=60) * 5.0  # per-example difficulty, cancels in the pairing
        a = shared + rng.normal(size=60) + 0.3
        b = shared + rng.normal(size=60)
        est = stats.paired_bootstrap(a, b, opts)
        hits += est.ci_low <= 0.3 <= est.ci_high
        assert est.mean == pytest.approx(float(np.mean(a - b)))
    assert 0.90 <= hits / trials <= 0.98


def test_bootstrap_interval_matches_the_normal_theory_interval_for_large_n() -> None:
    x = np.random.default_rng(0).normal(size=4000)
    est = stats.bootstrap_mean(x, StatsOptions(n_resamples=4000))
    half = 1.959964 * x.std(ddof=1) / math.sqrt(x.size)
    assert est.ci_low == pytest.approx(x.mean() - half, abs=0.08 * half)
    assert est.ci_high == pytest.approx(x.mean() + half, abs=0.08 * half)


def test_identical_inputs_give_zero_diff_zero_interval_and_p_one() -> None:
    a = np.random.default_rng(1).normal(size=30)
    for test in stats.TESTS:
        row = stats.compare_paired(
            a, a.copy(), metric="m", name_a="x", name_b="y", opts=StatsOptions(test=test)
        )
        assert (row["diff"], row["ci_low"], row["ci_high"], row["p_value"]) == (0, 0, 0, 1.0)
        assert row["n"] == 30 and row["mean_a"] == row["mean_b"]


@pytest.mark.parametrize("test", stats.TESTS)
def test_p_values_equal_scipys_direct_call(test: str) -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=25)
    b = a + rng.normal(loc=0.4, size=25)
    stat, p = stats.paired_test(a, b, test)
    ref = sps.wilcoxon(a, b) if test == "wilcoxon" else sps.ttest_rel(a, b)
    assert (stat, p) == (float(ref.statistic), float(ref.pvalue))
    row = stats.compare_paired(
        a, b, metric="m", name_a="a", name_b="b", opts=StatsOptions(test=test)
    )
    assert row["p_value"] == p and row["test"] == test


def test_seeded_and_deterministic_and_block_size_does_not_matter(monkeypatch) -> None:
    x = np.random.default_rng(9).normal(size=100)
    first = stats.bootstrap_mean(x, StatsOptions(n_resamples=500, seed=4))
    assert stats.bootstrap_mean(x, StatsOptions(n_resamples=500, seed=4)) == first
    assert stats.bootstrap_mean(x, StatsOptions(n_resamples=500, seed=5)) != first
    monkeypatch.setattr(stats, "_BLOCK_CELLS", 700)  # 7 resamples a block, 500 % 7 != 0
    small = stats.bootstrap_mean(x, StatsOptions(n_resamples=500, seed=4))
    assert (small.mean, small.ci_low, small.ci_high) == pytest.approx(
        (first.mean, first.ci_low, first.ci_high), rel=1e-12
    )


def test_count_matrix_bootstrap_equals_gathering_the_resampled_values() -> None:
    """The vectorised path (count blocks @ x) against the textbook one (x[idx].mean)."""
    x = np.random.default_rng(10).exponential(size=37)
    opts = StatsOptions(n_resamples=300, seed=2)
    idx = np.random.default_rng(2).integers(0, 37, size=(300, 37))  # the same draws
    textbook = np.quantile(x[idx].mean(axis=1), [0.025, 0.975])
    est = stats.bootstrap_mean(x, opts)
    assert (est.ci_low, est.ci_high) == pytest.approx(tuple(textbook), rel=1e-12)


def test_nan_pairs_are_dropped_and_counted() -> None:
    a = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    b = np.array([0.0, np.nan, 1.0, 1.0, 1.0])
    row = stats.compare_paired(a, b, metric="m", name_a="a", name_b="b")
    assert row["n"] == 3
    assert row["diff"] == pytest.approx(np.mean([1.0, 3.0, 4.0]))
    assert row["mean_a"] == pytest.approx(np.mean([1.0, 4.0, 5.0]))
    assert stats.bootstrap_mean([np.nan]).n == 0
    one = stats.bootstrap_mean([2.5])
    assert (one.mean, one.ci_low, one.ci_high, one.n) == (2.5, 2.5, 2.5, 1)
    assert math.isnan(stats.paired_test([1.0], [2.0])[1])


def test_pooling_average_equals_pairing_the_seed_averages() -> None:
    rng = np.random.default_rng(11)
    a_seeds = [rng.normal(size=40) + s for s in range(3)]
    b_seeds = [rng.normal(size=40) for _ in range(2)]
    opts = StatsOptions(n_resamples=800, pooling="average")
    pooled = stats.pooled_paired(a_seeds, b_seeds, opts)
    direct = stats.paired_bootstrap(np.mean(a_seeds, axis=0), np.mean(b_seeds, axis=0), opts)
    assert pooled == direct
    row = stats.compare_pooled(a_seeds, b_seeds, metric="m", name_a="a", name_b="b", opts=opts)
    assert row["p_value"] == stats.paired_test(np.mean(a_seeds, 0), np.mean(b_seeds, 0))[1]
    assert row["test"].startswith("wilcoxon (pooled 3+2 seeds")


def test_hierarchical_pooling_widens_the_interval_when_seeds_disagree() -> None:
    rng = np.random.default_rng(2)
    example = rng.normal(size=80)
    a_seeds = [example + rng.normal(scale=0.1, size=80) + off for off in (-1.0, 0.0, 1.0)]
    b_seeds = [example + rng.normal(scale=0.1, size=80) for _ in range(3)]
    avg = stats.pooled_paired(a_seeds, b_seeds, StatsOptions(n_resamples=2000))
    hier = stats.pooled_paired(
        a_seeds, b_seeds, StatsOptions(n_resamples=2000, pooling="hierarchical")
    )
    assert hier.mean == pytest.approx(avg.mean)
    assert (hier.ci_high - hier.ci_low) > 5 * (avg.ci_high - avg.ci_low)
    # with identical seeds, resampling seeds changes nothing: same width as averaging
    same = stats.pooled_paired(
        [example + 0.5] * 3, [example] * 3, StatsOptions(pooling="hierarchical")
    )
    assert (same.mean, same.ci_low, same.ci_high) == pytest.approx((0.5, 0.5, 0.5))


def test_frame_helpers() -> None:
    frame = pd.DataFrame(
        {
            "label": ["x"] * 4 + ["y"] * 3,
            "example_id": ["e1", "e2", "e3", "e4", "e3", "e1", "e2"],
            "value": [1.0, 2.0, 3.0, 4.0, 30.0, 10.0, 20.0],
        }
    )
    a, b, ids = stats.paired_arrays(
        frame, value="value", unit="example_id", key="label", a="x", b="y"
    )
    assert ids == ["e1", "e2", "e3"]
    assert a.tolist() == [1.0, 2.0, 3.0] and b.tolist() == [10.0, 20.0, 30.0]
    table = stats.mean_table(frame, value="value", by=["label"], opts=StatsOptions(n_resamples=200))
    assert table.columns.tolist() == ["label", "mean", "ci_low", "ci_high", "n"]
    assert table["mean"].tolist() == [2.5, 20.0] and table["n"].tolist() == [4, 3]
    assert (table["ci_low"] <= table["mean"]).all() and (table["mean"] <= table["ci_high"]).all()
    summary = stats.summary_frame([stats.compare_paired(a, b, metric="v", name_a="x", name_b="y")])
    assert tuple(summary.columns) == stats.SUMMARY_COLUMNS


def test_bad_options_are_input_errors() -> None:
    with pytest.raises(InputError, match="--test"):
        StatsOptions(test="sign")
    with pytest.raises(InputError, match="--pooling"):
        StatsOptions(pooling="median")
    with pytest.raises(InputError, match="--confidence"):
        StatsOptions(confidence=95)


def test_ratio_bootstrap_is_the_token_weighted_mean_and_equal_weights_match_the_mean() -> None:
    rng = np.random.default_rng(8)
    num, den = rng.normal(loc=5.0, size=60), rng.integers(1, 9, size=60).astype(float)
    est = stats.bootstrap_ratio(num, den, StatsOptions(n_resamples=500))
    assert est.mean == pytest.approx(num.sum() / den.sum()) and est.n == 60
    assert est.ci_low < est.mean < est.ci_high
    # with every weight 1 the ratio is the plain mean, resampled with the same draws
    same = stats.bootstrap_ratio(num, np.ones(60), StatsOptions(n_resamples=500))
    plain = stats.bootstrap_mean(num, StatsOptions(n_resamples=500))
    assert (same.mean, same.ci_low, same.ci_high) == pytest.approx(
        (plain.mean, plain.ci_low, plain.ci_high)
    )
