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
