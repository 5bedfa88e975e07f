import pytest

from lookfirst.scoring import policies

PEBR = policies.BUILTIN_POLICIES["pebr"][1]
EUREKA = policies.BUILTIN_POLICIES["mm-eureka"][1]
EASYR1 = policies.BUILTIN_POLICIES["easyr1-online"][1]


@pytest.mark.parametrize("k,n,bucket", [(8, 8, "easy"), (7, 8, "medium"), (1, 8, "medium"), (0, 8, "hard"),
                                        (16, 16, "easy"), (0, 0, "unscored")])
def test_pebr_rule(k, n, bucket):
    assert policies.bucket_for(PEBR, k, n) == bucket


def test_threshold_rules_put_edges_where_the_papers_do():
    assert [policies.bucket_for(EUREKA, k, 10) for k in (0, 1, 9, 10)] == ["hard", "medium", "medium", "easy"]
    assert [policies.bucket_for(EASYR1, k, 8) for k in (0, 1, 7, 8)] == ["hard", "medium", "medium", "easy"]


def test_wilson_interval_exact_values():
    assert [round(x, 4) for x in policies.wilson_interval(4, 8)] == [0.2152, 0.7848]
    assert [round(x, 4) for x in policies.wilson_interval(0, 8)] == [0.0, 0.3244]


def test_confidence_matches_closed_forms():
    # Easy after 8/8: E[p^8] under Beta(9, 1) = 9/17.
    assert policies.confidence(PEBR, 8, 8, 8) == pytest.approx(9 / 17, abs=1e-12)
    # Hard after 0/8 is the mirror image.
    assert policies.confidence(PEBR, 0, 8, 8) == pytest.approx(9 / 17, abs=1e-12)
    # Medium after 4/8: 1 - E[p^8] - E[(1-p)^8] under Beta(5, 5) = 1 - 2 * B(13,5)/B(5,5).
    from math import lgamma, exp
    lb = lambda a, b: lgamma(a) + lgamma(b) - lgamma(a + b)
    assert policies.confidence(PEBR, 4, 8, 8) == pytest.approx(1 - 2 * exp(lb(13, 5) - lb(5, 5)), abs=1e-12)
    # More samples, more confidence in the same bucket.
    assert policies.confidence(PEBR, 16, 16, 8) > policies.confidence(PEBR, 8, 8, 8)


def test_decided_lets_adaptive_sampling_stop_early():
    assert policies.decided(PEBR, 1, 2, 8)  # one right, one wrong: Medium whatever follows
    assert not policies.decided(PEBR, 4, 4, 8)  # all right so far: could still be Easy or Medium
    assert not policies.decided(PEBR, 0, 7, 8)
    assert policies.decided(PEBR, 0, 8, 8)
