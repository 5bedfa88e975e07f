"""Bucket policies: turning correct counts into Easy / Medium / Hard, with a confidence.

A policy is data (see BucketPolicy.rules); this module evaluates any such rule list. No Django here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# name -> (description, rules, sort, reference_n). Seeded into the database by a migration.
BUILTIN_POLICIES: dict[str, tuple[str, list[dict], str, int]] = {
    "pebr": (
        "PeBR-R1 (default): Easy = N/N correct, Hard = 0/N, Medium = 1..N-1. N = 8 at T 1.2, top_p 0.99.",
        [{"bucket": "easy", "min": 1.0, "max": 1.0}, {"bucket": "hard", "min": 0.0, "max": 0.0},
         {"bucket": "medium", "min": 0.0, "max": 1.0}],
        "", 8),
    "capcurriculum": (
        "CapCurriculum: K = 16 at T 0.7, items sorted easy -> hard by pass rate; pass rate 1 is Easy.",
        [{"bucket": "easy", "min": 1.0, "max": 1.0}, {"bucket": "hard", "min": 0.0, "max": 0.0},
         {"bucket": "medium", "min": 0.0, "max": 1.0}],
        "pass_rate_desc", 16),
    "mm-eureka": (
        "MM-Eureka: keep mean accuracy in [0.1, 0.9] (Medium); above is Easy, below is Hard.",
        [{"bucket": "easy", "min": 0.9, "max": 1.0, "min_exclusive": True},
         {"bucket": "hard", "min": 0.0, "max": 0.1, "max_exclusive": True},
         {"bucket": "medium", "min": 0.1, "max": 0.9}],
        "", 8),
    "easyr1-online": (
        "EasyR1 online filter: keep 0.01 < mean < 0.99.",
        [{"bucket": "easy", "min": 0.99, "max": 1.0}, {"bucket": "hard", "min": 0.0, "max": 0.01},
         {"bucket": "medium", "min": 0.01, "max": 0.99, "min_exclusive": True, "max_exclusive": True}],
        "", 8),
    "skywork-or1": (
        "Skywork-OR1: keep 1..15 of 16 correct.",
        [{"bucket": "easy", "min": 1.0, "max": 1.0}, {"bucket": "hard", "min": 0.0, "max": 0.0},
         {"bucket": "medium", "min": 0.0, "max": 1.0}],
        "", 16),
}

@dataclass(frozen=True)
class Verdict:
    bucket: str
    confidence: float
    wilson_low: float
    wilson_high: float


def bucket_for(rules: list[dict], k: int, n: int) -> str:
    """First rule whose range holds the observed pass rate k/n.

    >>> bucket_for(BUILTIN_POLICIES["pebr"][1], 8, 8), bucket_for(BUILTIN_POLICIES["pebr"][1], 3, 8)
    ('easy', 'medium')
    """
    if n == 0:
        return "unscored"
    rate = k / n
    for rule in rules:
        low_ok = rate > rule["min"] if rule.get("min_exclusive") else rate >= rule["min"] - 1e-12
        high_ok = rate < rule["max"] if rule.get("max_exclusive") else rate <= rule["max"] + 1e-12
        if low_ok and high_ok:
            return rule["bucket"]
    return "hard"


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson 95% score interval of a pass rate.

    >>> [round(x, 3) for x in wilson_interval(8, 8)]
    [0.676, 1.0]
    """
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def confidence(rules: list[dict], k: int, n: int, reference_n: int) -> float:
    """Probability that a fresh draw of `reference_n` answers lands in the same bucket.

    The item's true pass rate p has the Beta(k+1, n-k+1) posterior (uniform prior); for each p the
    chance of each bucket is a binomial sum over the rule. With N = 8, an item seen 8/8 is Easy again
    with probability E[p^8] = 9/17 ~ 0.53: the noise science.md warns about, made visible.

    >>> round(confidence(BUILTIN_POLICIES["pebr"][1], 8, 8, 8), 4)
    0.5294
    """
    if n == 0:
        return 0.0
    observed = bucket_for(rules, k, n)
    a, b = k + 1, n - k + 1
    total = 0.0
    for j in range(reference_n + 1):
        if bucket_for(rules, j, reference_n) == observed:
            # E[C(N,j) p^j (1-p)^(N-j)] under Beta(a, b) = C(N,j) B(a+j, b+N-j) / B(a, b), exactly.
            total += math.comb(reference_n, j) * math.exp(_log_beta(a + j, b + reference_n - j) - _log_beta(a, b))
    return min(1.0, max(0.0, total))


def verdict(rules: list[dict], k: int, n: int, reference_n: int) -> Verdict:
    low, high = wilson_interval(k, n)
    return Verdict(bucket_for(rules, k, n), confidence(rules, k, n, reference_n), low, high)


def decided(rules: list[dict], k: int, m: int, n: int) -> bool:
    """True when every possible outcome of the remaining n - m samples gives the same bucket.

    >>> rules = BUILTIN_POLICIES["pebr"][1]
    >>> decided(rules, 1, 2, 8), decided(rules, 2, 2, 8), decided(rules, 0, 8, 8)
    (True, False, True)
    """
    buckets = {bucket_for(rules, k + extra, n) for extra in range(0, n - m + 1)}
    return len(buckets) == 1


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


# ---- adaptive sampling: stop an item when its final bucket is predictable --------------------------

PRIOR_GRID = 101  # pass rates 0.00, 0.01, ..., 1.00: exact 0 and 1 are on it (a model can be sure)
PRIOR_MIN_ITEMS = 32  # below this many items the pool's pass-rate spread is not estimated: exact rule only
PRIOR_FLOOR = 0.02  # share of the prior kept uniform, so no pass rate is ever ruled out by the fit alone


def fit_prior(counts: list[tuple[int, int]], iterations: int = 300) -> list[float] | None:
    """The pool's distribution of true pass rates on PRIOR_GRID, estimated from observed (correct, sampled).

    Nonparametric maximum likelihood (EM over grid weights), then PRIOR_FLOOR of uniform mixed in.
    Valid with items stopped early: the likelihood of k right in m is p^k (1-p)^(m-k) whatever the
    stopping rule. None when fewer than PRIOR_MIN_ITEMS items have samples.

    >>> prior = fit_prior([(4, 4)] * 20 + [(0, 4)] * 20)
    >>> round(prior[0], 3), round(prior[-1], 3), round(sum(prior[1:-1]), 3)
    (0.49, 0.49, 0.02)
    """
    import numpy as np

    counts = [(k, m) for k, m in counts if m > 0]
    if len(counts) < PRIOR_MIN_ITEMS:
        return None
    k = np.array([c[0] for c in counts], dtype=float)[:, None]
    m = np.array([c[1] for c in counts], dtype=float)[:, None]
    grid = np.linspace(0.0, 1.0, PRIOR_GRID)[None, :]
    tiny = 1e-300  # log 0 as a large finite negative, so that 0 * log 0 is 0
    log_lik = k * np.log(np.maximum(grid, tiny)) + (m - k) * np.log(np.maximum(1.0 - grid, tiny))
    lik = np.exp(log_lik - log_lik.max(axis=1, keepdims=True))
    weights = np.full(PRIOR_GRID, 1.0 / PRIOR_GRID)
    for _ in range(iterations):
        post = lik * weights
        post /= post.sum(axis=1, keepdims=True)
        weights = post.mean(axis=0)
    weights = (1 - PRIOR_FLOOR) * weights + PRIOR_FLOOR / PRIOR_GRID
    return [float(w) for w in weights]


def bucket_chances(rules: list[dict], k: int, m: int, n: int, prior: list[float]) -> dict[str, float]:
    """Probability of each final bucket after n samples, given k right of the first m and a prior over pass rates.

    >>> prior = [0.5] + [0.0] * (PRIOR_GRID - 2) + [0.5]  # every item always right or always wrong
    >>> bucket_chances(BUILTIN_POLICIES["pebr"][1], 4, 4, 16, prior)
    {'easy': 1.0}
    """
    grid = [j / (PRIOR_GRID - 1) for j in range(PRIOR_GRID)]
    post = [w * p**k * (1 - p) ** (m - k) for w, p in zip(prior, grid)]
    total = sum(post)
    if total == 0:
        return {bucket_for(rules, k, m): 1.0}
    r = n - m
    chances: dict[str, float] = {}
    for extra in range(r + 1):
        bucket = bucket_for(rules, k + extra, n)
        ways = math.comb(r, extra)
        mass = sum(w * ways * p**extra * (1 - p) ** (r - extra) for w, p in zip(post, grid) if w) / total
        if mass:
            chances[bucket] = chances.get(bucket, 0.0) + mass
    return chances


def can_stop(rules: list[dict], k: int, m: int, n: int, prior: list[float] | None, target: float | None) -> bool:
    """Adaptive sampling's stopping rule after k right of m (of at most n).

    Stop when the bucket is decided whatever the remaining samples say (one right and one wrong rule out
    both PeBR extremes), or, given a fitted prior and a target, when the bucket the samples so far point
    to is the final bucket with probability >= target.

    >>> rules = BUILTIN_POLICIES["pebr"][1]
    >>> can_stop(rules, 1, 2, 16, None, None), can_stop(rules, 4, 4, 16, None, None)
    (True, False)
    >>> sure = [0.5] + [0.0] * (PRIOR_GRID - 2) + [0.5]
    >>> can_stop(rules, 4, 4, 16, sure, 0.95), can_stop(rules, 4, 4, 16, fit_prior([(8, 16)] * 40), 0.95)
    (True, False)
    """
    if m >= n or decided(rules, k, m, n):
        return True
    if prior is None or target is None:
        return False
    return bucket_chances(rules, k, m, n, prior).get(bucket_for(rules, k, m), 0.0) >= target
