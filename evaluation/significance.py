"""Is model B better than model A on a task, and by how much: paired tests and bootstrap intervals over per-query scores.

Both come from scipy (``scipy.stats.permutation_test``, ``ttest_rel``, ``bootstrap``); this module
only pairs the queries and says what was run. The default test is the paired randomization
(sign-flip) test, the one IR papers use for per-query nDCG@10 (Smucker et al., CIKM 2007, found
it agrees with the t-test and the bootstrap on TREC runs and assumes no normality); ``method="t"``
gives the paired t-test. 10,000 resamples put the smallest reportable p-value near 1e-4, below any
threshold a reader applies; each run is seeded, so a report rerun prints the same p-values.

Examples
--------
>>> from evaluation.significance import paired_test
>>> a = {f"q{i}": 0.5 for i in range(50)}
>>> b = {f"q{i}": 0.5 + (0.2 if i % 2 else 0.0) for i in range(50)}
>>> result = paired_test(a, b)
>>> result["delta"], result["p_value"] < 0.001
(0.1, True)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

METHODS = ("randomization", "t")
RESAMPLES = 10_000
SEED = 0


def paired(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """The two score arrays over the queries both runs scored, in one order; a :class:`ValueError` when they share none."""
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError("the two runs share no query: they are not of the same task")
    return np.array([a[q] for q in common], dtype=np.float64), np.array([b[q] for q in common], dtype=np.float64)


def paired_test(a: Mapping[str, float], b: Mapping[str, float], *, method: str = "randomization",
                resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """Two-sided paired test of B against A over per-query scores: ``{"method", "n", "mean_a", "mean_b", "delta", "p_value"}``.

    ``delta`` is mean(B) - mean(A). Identical scores on every query give p = 1 (no difference to test).
    """
    from scipy import stats

    if method not in METHODS:
        raise ValueError(f"unknown test {method!r}: choose {' or '.join(METHODS)}")
    x, y = paired(a, b)
    diff = y - x
    out = {"method": method, "n": int(len(diff)), "mean_a": round(float(x.mean()), 5), "mean_b": round(float(y.mean()), 5),
           "delta": round(float(diff.mean()), 5)}
    if not np.any(diff):
        return {**out, "p_value": 1.0}
    if method == "t":
        p = stats.ttest_rel(y, x).pvalue
    else:
        result = stats.permutation_test((diff,), np.mean, permutation_type="samples", n_resamples=resamples,
                                        alternative="two-sided", vectorized=True, random_state=seed)
        p = result.pvalue
    return {**out, "p_value": float(p)}


def bootstrap_ci(values, *, confidence: float = 0.95, resamples: int = 2_000, seed: int = SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-query ``values`` (a constant sample: the value twice)."""
    from scipy import stats

    data = np.asarray(list(values.values()) if isinstance(values, Mapping) else values, dtype=np.float64)
    if len(data) == 0:
        raise ValueError("no values to bootstrap")
    if np.all(data == data[0]):
        return float(data[0]), float(data[0])
    result = stats.bootstrap((data,), np.mean, confidence_level=confidence, n_resamples=resamples, method="percentile",
                             vectorized=True, random_state=seed)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def format_p(p: float) -> str:
    """``p<0.001`` below a thousandth, else three decimals."""
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"
