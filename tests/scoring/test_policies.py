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


def test_fit_prior_needs_enough_items_and_recovers_point_masses():
    assert policies.fit_prior([(4, 4)] * 31) is None
    assert policies.fit_prior([(4, 4)] * 31 + [(0, 0)] * 5) is None  # unsampled items do not count
    prior = policies.fit_prior([(4, 4)] * 16 + [(0, 4)] * 16)
    assert len(prior) == policies.PRIOR_GRID and sum(prior) == pytest.approx(1.0, abs=1e-12)
    assert (round(prior[0], 4), round(prior[-1], 4)) == (0.4902, 0.4902)
    mid = policies.fit_prior([(8, 16)] * 40)  # every item half right: the mass moves to p = 0.5
    assert max(range(policies.PRIOR_GRID), key=mid.__getitem__) == 50 and mid[50] > 0.3


def test_bucket_chances_are_a_distribution_and_match_the_binomial():
    uniform = [1 / policies.PRIOR_GRID] * policies.PRIOR_GRID
    chances = policies.bucket_chances(PEBR, 4, 4, 16, uniform)
    assert sum(chances.values()) == pytest.approx(1.0, abs=1e-12) and set(chances) == {"easy", "medium"}
    # Uniform prior on the grid: P(easy) = sum p^16 / sum p^4 over the grid.
    grid = [j / 100 for j in range(101)]
    assert chances["easy"] == pytest.approx(sum(p**16 for p in grid) / sum(p**4 for p in grid), abs=1e-12)
    point = [0.0] * policies.PRIOR_GRID
    point[50] = 1.0  # every item right half the time: 8 more answers all right has chance 2^-8
    assert policies.bucket_chances(PEBR, 8, 8, 16, point)["easy"] == pytest.approx(0.5**8, abs=1e-15)


def test_can_stop_uses_certainty_first_then_the_target():
    sure = [0.5] + [0.0] * (policies.PRIOR_GRID - 2) + [0.5]
    assert policies.can_stop(PEBR, 2, 3, 16, None, None)  # right and wrong seen: Medium for sure
    assert not policies.can_stop(PEBR, 4, 4, 16, None, None)
    assert policies.can_stop(PEBR, 4, 4, 16, sure, 0.95) and policies.can_stop(PEBR, 0, 4, 16, sure, 0.95)
    spread = policies.fit_prior([(k, 16) for k in range(17)] * 4)  # pass rates all over: keep sampling
    assert not policies.can_stop(PEBR, 4, 4, 16, spread, 0.95)
    assert policies.can_stop(PEBR, 4, 16, 16, None, None)  # nothing left to sample
