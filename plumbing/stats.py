"""Confidence intervals and paired tests for every number a diagnostic reports.

    from plumbing.stats import StatsOptions, bootstrap_mean, paired_bootstrap, compare_paired
    opts = StatsOptions(n_resamples=10_000, confidence=0.95, seed=0, test="wilcoxon")
    est = bootstrap_mean(values, opts)            # Estimate(mean, ci_low, ci_high, n)
    est = paired_bootstrap(a, b, opts)            # of mean(a - b), a[i] and b[i] the same example
    est = bootstrap_ratio(nll_sums, n_tokens, opts)   # token-weighted mean, examples resampled
    stat, p = paired_test(a, b, "wilcoxon")       # or "ttest": scipy's own functions
    row = compare_paired(a, b, metric="log_ppl:code", name_a="follow-s0", name_b="precede-s0",
                         opts=opts)               # one row of a summary_*.parquet table
    row = compare_pooled([a_s0, a_s1], [b_s0, b_s1], metric=..., name_a=..., name_b=..., opts=opts)

Frame helpers (tidy tables in, tidy tables out):
    mean_table(frame, value="log_ppl", by=["label", "span"], opts=opts)   # by + mean, ci_*, n
    paired_arrays(frame, value, unit="example_id", key="label", a="x", b="y")  # aligned a, b, ids

Method (one choice each, all flags of `StatsOptions`):
- Bootstrap: percentile intervals from `n_resamples` resamples of the examples with replacement,
  drawn with `numpy.random.default_rng(seed)` (deterministic), vectorised in blocks of at most
  `_BLOCK_CELLS` index cells so memory stays bounded for any n; each block is a count matrix
  and a resample's mean is a row of `counts @ x / n` (reused by every group of the same size).
- Paired: the unit is the example. A difference between two models (or formats) is the mean of
  per-example differences `d_i = a_i - b_i`; its interval resamples examples, keeping pairs
  together. Pairs with a NaN on either side are dropped (and `n` says how many were used).
- Paired test: `wilcoxon` (scipy.stats.wilcoxon, signed-rank, zeros dropped: zero_method "wilcox")
  or `ttest` (scipy.stats.ttest_rel); two-sided. All-zero differences give p = 1 (scipy would
  return NaN); fewer than two pairs give p = NaN.
- Pooling seeds (`pooling`): several training seeds of each side, each scored on the same
  examples. `average` (default): average each example over the seeds of a side, then pair and
  bootstrap over examples: the interval covers example sampling, seed noise only through the
  averages. `hierarchical`: each replicate resamples the examples (shared by both sides: they are
  paired) and, independently, the seeds of each side with replacement, so seed-to-seed variance
  widens the interval (with 2-3 seeds this is coarse; say so when reporting). The point
  estimate and the paired test are the same in both: on the seed-averaged per-example values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

TESTS = ("wilcoxon", "ttest")
POOLING = ("average", "hierarchical")
_BLOCK_CELLS = 4_000_000  # resample index cells per vectorised block (~32 MB of int64)
_CACHE_CELLS = 8_000_000  # keep the last count matrices when they are at most this big (64 MB)
_COUNTS_CACHE: dict[str, Any] = {}

# the columns of every summary_*.parquet (docs/CONTRACTS.md)
SUMMARY_COLUMNS = (
    "metric",
    "a",
    "b",
    "mean_a",
    "mean_b",
    "diff",
    "ci_low",
    "ci_high",
    "p_value",
    "test",
    "n",
)


@dataclass(frozen=True)
class StatsOptions:
    """How intervals and tests are computed; commands expose each field as a flag."""

    n_resamples: int = 10_000  # bootstrap resamples
    confidence: float = 0.95  # two-sided interval level
    seed: int = 0  # bootstrap RNG seed
    test: str = "wilcoxon"  # paired test: wilcoxon | ttest
    pooling: str = "average"  # several seeds per side: average | hierarchical

    def __post_init__(self) -> None:
        from plumbing import InputError

        if self.test not in TESTS:
            raise InputError(f"--test {self.test!r}: choose from {', '.join(TESTS)}")
        if self.pooling not in POOLING:
            raise InputError(f"--pooling {self.pooling!r}: choose from {', '.join(POOLING)}")
        if not 0.0 < self.confidence < 1.0:
            raise InputError(f"--confidence {self.confidence}: must be strictly between 0 and 1")
        if self.n_resamples < 1:
            raise InputError(f"--bootstrap {self.n_resamples}: need at least one resample")


# The config fields that decide only the summaries (rebuilt from the parts on every run), never
# a unit of work's numbers: a resume may change them (plumbing.runner.run_identity skips them).
STATS_FIELDS = ("n_resamples", "confidence", "test", "pooling", "stats_seed")


def stats_options(cfg: Any) -> StatsOptions:
    """StatsOptions from a command config's n_resamples, confidence, test, stats_seed and, where
    the config has one, pooling."""
    pooling = {"pooling": cfg.pooling} if hasattr(cfg, "pooling") else {}
    return StatsOptions(
        n_resamples=cfg.n_resamples,
        confidence=cfg.confidence,
        seed=cfg.stats_seed,
        test=cfg.test,
        **pooling,
    )


@dataclass(frozen=True)
class Estimate:
    mean: float
    ci_low: float
    ci_high: float
    n: int


_NAN_ESTIMATE = Estimate(math.nan, math.nan, math.nan, 0)


def _as_array(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _percentiles(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _count_blocks(n: int, opts: StatsOptions) -> list[np.ndarray]:
    """Bootstrap resamples of n units as count matrices: blocks of [rows, n] float64, row r
    holding how often each unit was drawn in resample r (rows sum to n over all blocks:
    n_resamples). Drawn with `default_rng(seed)`; the last result is cached, so every group of
    a summary table with the same n reuses the draws (then a mean is one matrix product)."""
    key = (n, opts.n_resamples, opts.seed, _BLOCK_CELLS)
    if _COUNTS_CACHE.get("key") == key:
        return _COUNTS_CACHE["blocks"]
    rng = np.random.default_rng(opts.seed)
    block = max(1, _BLOCK_CELLS // n)
    blocks = []
    for start in range(0, opts.n_resamples, block):
        rows = min(block, opts.n_resamples - start)
        idx = rng.integers(0, n, size=(rows, n))  # [rows, n]
        flat = (idx + np.arange(rows)[:, None] * n).ravel()
        blocks.append(np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64))
    if opts.n_resamples * n <= _CACHE_CELLS:
        _COUNTS_CACHE.update(key=key, blocks=blocks)
    return blocks


def _resampled_sums(x: np.ndarray, opts: StatsOptions) -> np.ndarray:
    """[n_resamples] sums of x over each resample (vectorised: count blocks @ x)."""
    return np.concatenate([counts @ x for counts in _count_blocks(x.shape[0], opts)])


def bootstrap_mean(values: Any, opts: StatsOptions | None = None) -> Estimate:
    """Mean of `values` (NaNs dropped) with a percentile bootstrap interval."""
    opts = opts or StatsOptions()
    x = _as_array(values)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return _NAN_ESTIMATE
    mean = float(x.mean())
    if x.size == 1:
        return Estimate(mean, mean, mean, 1)
    low, high = _percentiles(_resampled_sums(x, opts) / x.size, opts.confidence)
    return Estimate(mean, low, high, int(x.size))


def bootstrap_ratio(num: Any, den: Any, opts: StatsOptions | None = None) -> Estimate:
    """sum(num) / sum(den) (e.g. a token-weighted mean loss from per-example sums and token
    counts) with a percentile interval from resampling the units (examples) with replacement."""
    opts = opts or StatsOptions()
    num, den = _paired(num, den)
    if num.size == 0 or den.sum() == 0:
        return _NAN_ESTIMATE
    ratio = float(num.sum() / den.sum())
    if num.size == 1:
        return Estimate(ratio, ratio, ratio, 1)
    reps = _resampled_sums(num, opts) / _resampled_sums(den, opts)
    low, high = _percentiles(reps, opts.confidence)
    return Estimate(ratio, low, high, int(num.size))


def _paired(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_array(a), _as_array(b)
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.size} and {b.size}")
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep], b[keep]


def paired_bootstrap(a: Any, b: Any, opts: StatsOptions | None = None) -> Estimate:
    """mean(a - b) over pairs (NaN pairs dropped) with a paired bootstrap interval."""
    a, b = _paired(a, b)
    return bootstrap_mean(a - b, opts)


def paired_test(a: Any, b: Any, test: str = "wilcoxon") -> tuple[float, float]:
    """(statistic, two-sided p-value) of a paired test; scipy's own functions."""
    from scipy import stats as sps

    if test not in TESTS:
        raise ValueError(f"unknown paired test {test!r} (choose from {', '.join(TESTS)})")
    a, b = _paired(a, b)
    if a.size < 2:
        return math.nan, math.nan
    d = a - b
    if np.all(d == 0):
        return 0.0, 1.0
    if test == "wilcoxon":
        res = sps.wilcoxon(a, b)
    else:
        res = sps.ttest_rel(a, b)
    return float(res.statistic), float(res.pvalue)


def _row(
    metric: str,
    name_a: str,
    name_b: str,
    a: np.ndarray,
    b: np.ndarray,
    est: Estimate,
    p_value: float,
    test: str,
) -> dict[str, Any]:
    return {
        "metric": metric,
        "a": name_a,
        "b": name_b,
        "mean_a": float(a.mean()) if a.size else math.nan,
        "mean_b": float(b.mean()) if b.size else math.nan,
        "diff": est.mean,
        "ci_low": est.ci_low,
        "ci_high": est.ci_high,
        "p_value": p_value,
        "test": test,
        "n": est.n,
    }


def compare_paired(
    a: Any,
    b: Any,
    *,
    metric: str,
    name_a: str,
    name_b: str,
    opts: StatsOptions | None = None,
) -> dict[str, Any]:
    """One summary_* row: means of a and b over the shared pairs, mean diff a - b, CI, p."""
    opts = opts or StatsOptions()
    a, b = _paired(a, b)
    est = bootstrap_mean(a - b, opts)
    _, p = paired_test(a, b, opts.test)
    return _row(metric, name_a, name_b, a, b, est, p, opts.test)


def _seed_matrix(per_seed: Sequence[Any]) -> np.ndarray:
    mat = np.vstack([_as_array(v) for v in per_seed])  # [seeds, examples]
    if mat.ndim != 2 or mat.shape[0] == 0:
        raise ValueError("pooling needs at least one seed with values")
    return mat


def pooled_paired(
    a_seeds: Sequence[Any], b_seeds: Sequence[Any], opts: StatsOptions | None = None
) -> Estimate:
    """mean over examples of (seed-mean of a) - (seed-mean of b), with the `opts.pooling` CI.

    a_seeds: one array per seed of side a, all aligned on the same examples (NaN = missing);
    likewise b_seeds. Examples missing on any seed of either side are dropped.
    """
    opts = opts or StatsOptions()
    a_mat, b_mat = _seed_matrix(a_seeds), _seed_matrix(b_seeds)  # [Sa, n], [Sb, n]
    if a_mat.shape[1] != b_mat.shape[1]:
        raise ValueError("both sides must be aligned on the same examples")
    keep = ~(np.isnan(a_mat).any(axis=0) | np.isnan(b_mat).any(axis=0))
    a_mat, b_mat = a_mat[:, keep], b_mat[:, keep]
    n = a_mat.shape[1]
    if n == 0:
        return _NAN_ESTIMATE
    d = a_mat.mean(axis=0) - b_mat.mean(axis=0)  # [n]
    if opts.pooling == "average" or n == 1:
        return bootstrap_mean(d, opts)
    rng = np.random.default_rng(opts.seed)
    sa, sb = a_mat.shape[0], b_mat.shape[0]
    block = max(1, _BLOCK_CELLS // n)
    reps = np.empty(opts.n_resamples, dtype=np.float64)
    for start in range(0, opts.n_resamples, block):
        rows = min(block, opts.n_resamples - start)
        # seed weights: counts of each seed among Sa draws with replacement, / Sa
        wa = np.stack([np.bincount(r, minlength=sa) for r in rng.integers(0, sa, (rows, sa))])
        wb = np.stack([np.bincount(r, minlength=sb) for r in rng.integers(0, sb, (rows, sb))])
        da = (wa / sa) @ a_mat - (wb / sb) @ b_mat  # [rows, n]: seed-resampled per-example diffs
        idx = rng.integers(0, n, size=(rows, n))  # [rows, n]: examples, shared by both sides
        reps[start : start + rows] = np.take_along_axis(da, idx, axis=1).mean(axis=1)
    low, high = _percentiles(reps, opts.confidence)
    return Estimate(float(d.mean()), low, high, int(n))


def compare_pooled(
    a_seeds: Sequence[Any],
    b_seeds: Sequence[Any],
    *,
    metric: str,
    name_a: str,
    name_b: str,
    opts: StatsOptions | None = None,
) -> dict[str, Any]:
    """A summary_* row pooling seeds (see module docstring); test on seed-averaged values."""
    opts = opts or StatsOptions()
    a_mat, b_mat = _seed_matrix(a_seeds), _seed_matrix(b_seeds)
    keep = ~(np.isnan(a_mat).any(axis=0) | np.isnan(b_mat).any(axis=0))
    a_avg, b_avg = a_mat[:, keep].mean(axis=0), b_mat[:, keep].mean(axis=0)
    est = pooled_paired(a_seeds, b_seeds, opts)
    _, p = paired_test(a_avg, b_avg, opts.test)
    test = f"{opts.test} (pooled {a_mat.shape[0]}+{b_mat.shape[0]} seeds, {opts.pooling})"
    return _row(metric, name_a, name_b, a_avg, b_avg, est, p, test)


# ---------------------------------------------------------------------------------------------
# tidy-frame helpers


def mean_table(
    frame: Any, *, value: str, by: Sequence[str], opts: StatsOptions | None = None
) -> Any:
    """One row per group: the `by` columns, mean of `value`, ci_low, ci_high, n (examples)."""
    import pandas as pd

    rows = []
    by = list(by)
    for key, group in frame.groupby(by, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        est = bootstrap_mean(group[value].to_numpy(), opts)
        row = dict(zip(by, key))
        row.update(mean=est.mean, ci_low=est.ci_low, ci_high=est.ci_high, n=est.n)
        rows.append(row)
    return pd.DataFrame(rows, columns=[*by, "mean", "ci_low", "ci_high", "n"])


def paired_arrays(
    frame: Any, *, value: str, unit: str, key: str, a: Any, b: Any
) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Values of rows with frame[key] == a and == b, aligned on `unit` (inner join, sorted)."""
    left = frame.loc[frame[key] == a, [unit, value]].drop_duplicates(unit).set_index(unit)
    right = frame.loc[frame[key] == b, [unit, value]].drop_duplicates(unit).set_index(unit)
    joined = left.join(right, how="inner", lsuffix="_a", rsuffix="_b").sort_index()
    return (
        joined[f"{value}_a"].to_numpy(dtype=np.float64),
        joined[f"{value}_b"].to_numpy(dtype=np.float64),
        list(joined.index),
    )


def summary_frame(rows: Sequence[dict[str, Any]]) -> Any:
    """A summary_*.parquet table from compare_* rows (the contract's columns, in order)."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    extra = [c for c in frame.columns if c not in SUMMARY_COLUMNS]
    return frame.reindex(columns=[*SUMMARY_COLUMNS, *extra])


def comparison_rows(
    frame: Any,
    *,
    value: str,
    metric: str = "metric",
    condition: str = "condition",
    unit: str = "example_id",
    metrics: Sequence[str] | None = None,
    conditions: Sequence[str] | None = None,
    means: bool = False,
    pool_by: Sequence[str] = (),
    pool_name: Any = None,
    opts: StatsOptions | None = None,
) -> list[dict[str, Any]]:
    """The one summary builder: the rows of a summary_*.parquet table.

    For each metric (frame[metric]; `metrics` gives their order, default sorted):
    - with `means`, one row per condition: the bootstrap CI of its mean (b = "");
    - every two conditions (`conditions` order, default sorted), paired on `unit`
      (`compare_paired`: examples both have, sorted by `unit`);
    - with `pool_by` (e.g. format, step): conditions grouped by those columns; when some group
      holds two or more conditions (seeds), every two groups compared with seeds pooled
      (`compare_pooled`), each group named `pool_name(key, n_conditions)`.
    `frame` needs columns metric, condition, unit, value and the pool_by columns.
    """
    import itertools

    opts = opts or StatsOptions()
    rows: list[dict[str, Any]] = []
    order = list(conditions) if conditions is not None else sorted(frame[condition].unique())
    names = list(metrics) if metrics is not None else sorted(frame[metric].unique())
    for name in names:
        sub = frame[frame[metric] == name]
        if sub.empty:
            continue
        present = [c for c in order if (sub[condition] == c).any()]
        if means:
            for c in present:
                est = bootstrap_mean(sub.loc[sub[condition] == c, value].to_numpy(), opts)
                mean = np.array([est.mean])
                rows.append(_row(name, c, "", mean, np.array([]), est, math.nan, "bootstrap mean"))
        for a, b in itertools.combinations(present, 2):
            va, vb, _ = paired_arrays(sub, value=value, unit=unit, key=condition, a=a, b=b)
            if len(va):
                rows.append(compare_paired(va, vb, metric=name, name_a=a, name_b=b, opts=opts))
        if pool_by:
            rows.extend(_pooled_rows(sub, value, name, condition, unit, pool_by, pool_name, opts))
    return rows


def _pooled_rows(
    sub: Any,
    value: str,
    metric: str,
    condition: str,
    unit: str,
    pool_by: Sequence[str],
    pool_name: Any,
    opts: StatsOptions,
) -> list[dict[str, Any]]:
    """Groups of conditions (seeds) compared group against group, seeds pooled."""
    import itertools

    sub = sub[sub[pool_by[0]].notna()]
    groups = {}
    for key, g in sub.groupby(list(pool_by), sort=True, dropna=False):
        conds = sorted(g[condition].unique())
        groups[pool_name(key if isinstance(key, tuple) else (key,), len(conds))] = (g, conds)
    if not any(len(c) >= 2 for _, c in groups.values()):
        return []
    rows = []
    for (name_a, (ga, ca)), (name_b, (gb, cb)) in itertools.combinations(groups.items(), 2):
        ids = sorted(set(ga[unit]) & set(gb[unit]))
        if not ids:
            continue

        def matrix(g: Any, conds: list[str], ids: list[Any] = ids) -> list[Any]:
            wide = g.pivot_table(index=unit, columns=condition, values=value)
            wide = wide.reindex(index=ids, columns=conds)
            return [wide[c].to_numpy() for c in conds]

        rows.append(
            compare_pooled(
                matrix(ga, ca),
                matrix(gb, cb),
                metric=metric,
                name_a=name_a,
                name_b=name_b,
                opts=opts,
            )
        )
    return rows
