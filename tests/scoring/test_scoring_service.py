from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from lookfirst.pools.models import Item
from lookfirst.scoring import policies, services
from lookfirst.scoring.models import ItemScore, ScoringRun
from tests.openai_stub import OpenAIStub
from tests.scoring.conftest import make_pool

pytestmark = pytest.mark.django_db

LAYOUT = "### Image Description: shapes\n### Rationales: look\n### Step 1: count\n### The final answer is: {}"


def run_inline(run: ScoringRun) -> ScoringRun:
    for chunk in services.scoring_run_chunks(run_id=run.pk):
        services.scoring_chunk_execute(run_id=run.pk, item_ids=chunk)
    run.refresh_from_db()
    return run


def test_pass_rates_buckets_and_pseudo_labels_exact(tmp_path):
    pool, items = make_pool(tmp_path, "exact", [("Q easy?", "3"), ("Q medium?", "red"), ("Q hard?", "B"),
                                               ("Q unlabelled?", None)])
    script = {
        "Q easy?": [LAYOUT.format("3")] * 7 + ["\\boxed{3.0}"],
        "Q medium?": [LAYOUT.format("Red.")] * 3 + [LAYOUT.format("blue")] * 5,
        "Q hard?": [LAYOUT.format("A")] * 8,
        "Q unlabelled?": [LAYOUT.format("7")] * 5 + [LAYOUT.format("8")] * 3,
    }
    with OpenAIStub(script) as stub:
        run = services.scoring_run_create(user=None, pool=pool, model_spec=stub.spec(), n_samples=8, enqueue=False,
                                          chunk_size=3)
        run = run_inline(run)

    assert (run.state, run.done, run.failed, run.total, run.generations) == ("done", 4, 0, 4, 32)
    assert run.summary["buckets"] == {"easy": 1, "medium": 2, "hard": 1}
    got = {i.question: i for i in Item.objects.filter(pool=pool)}
    easy, medium, hard, free = (got[f"<image>Q {n}?"] for n in ("easy", "medium", "hard", "unlabelled"))
    assert (easy.bucket, easy.n_correct, easy.n_samples, easy.bucket_source) == ("easy", 8, 8, "scored")
    assert (medium.bucket, medium.n_correct, medium.pass_rate) == ("medium", 3, 0.375)
    assert (hard.bucket, hard.n_correct) == ("hard", 0)
    assert easy.bucket_confidence == pytest.approx(9 / 17)
    assert (medium.wilson_low, medium.wilson_high) == pytest.approx(policies.wilson_interval(3, 8))
    # Label-free: graded against its own majority vote, marked as a pseudo-label with the agreement as confidence.
    assert (free.pseudo_answer, free.pseudo_agreement, free.bucket_source, free.bucket_confidence) == (
        "7", 0.625, "pseudo_label", 0.625)
    assert (free.bucket, free.n_correct) == ("medium", 5)
    score = ItemScore.objects.get(run=run, item=medium)
    assert [s["correct"] for s in score.samples] == [True] * 3 + [False] * 5
    assert [s["extracted"] for s in score.samples][:4] == ["Red", "Red", "Red", "blue"]
    assert score.samples[0]["text"] == LAYOUT.format("Red.")


def test_a_second_model_adds_its_own_record_and_keeps_the_first(tmp_path):
    pool, items = make_pool(tmp_path, "rescore", [("Q?", "1")])
    with OpenAIStub({"Q?": [LAYOUT.format("1")] * 8}) as stub:
        first = run_inline(services.scoring_run_create(user=None, pool=pool, model_spec=stub.spec(), enqueue=False))
    first_score = ItemScore.objects.get(run=first)
    with OpenAIStub({"Q?": [LAYOUT.format("1")] * 7 + [LAYOUT.format("2")]}) as stub2:
        second = services.scoring_run_create(user=None, pool=pool, model_spec=stub2.spec(), n_samples=16,
                                             enqueue=False)
        run_inline(second)
    item = Item.objects.get(pool=pool)
    assert ItemScore.objects.filter(item=item).count() == 2
    assert ItemScore.objects.get(pk=first_score.pk).n_correct == 8  # untouched
    assert (ItemScore.objects.get(run=second).n_correct, ItemScore.objects.get(run=second).n_samples) == (14, 16)
    assert (item.n_correct, item.n_samples, item.bucket) == (14, 16, "medium")  # a new model: its own record


def test_same_settings_pool_their_samples(tmp_path):
    pool, _ = make_pool(tmp_path, "pooled", [("Q?", "1")])
    script = {"Q?": [LAYOUT.format("1")] * 8}
    with OpenAIStub(script) as stub:
        run_inline(services.scoring_run_create(user=None, pool=pool, model_spec=stub.spec(), enqueue=False))
        stub.script["Q?"] = [LAYOUT.format("1")] * 7 + [LAYOUT.format("0")]
        run_inline(services.scoring_run_create(user=None, pool=pool, model_spec=stub.spec(), enqueue=False))
    item = Item.objects.get(pool=pool)
    assert (item.n_correct, item.n_samples, item.pass_rate, item.bucket) == (15, 16, 15 / 16, "medium")


def test_curator_bucket_survives_rescoring(tmp_path):
    pool, items = make_pool(tmp_path, "curated", [("Q?", "1")])
    Item.objects.filter(pk=items[0].pk).update(bucket="hard", bucket_source="curator")
    with OpenAIStub({"Q?": [LAYOUT.format("1")] * 8}) as stub:
        run_inline(services.scoring_run_create(user=None, pool=pool, model_spec=stub.spec(), enqueue=False))
    item = Item.objects.get(pk=items[0].pk)
    assert (item.bucket, item.bucket_source, item.n_correct) == ("hard", "curator", 8)


def test_adaptive_stops_once_the_bucket_is_decided(tmp_path):
    pool, _ = make_pool(tmp_path, "adaptive", [("mixed?", "1"), ("right?", "1"), ("wrong?", "1")])
    script = {"mixed?": [LAYOUT.format("1"), LAYOUT.format("2")], "right?": [LAYOUT.format("1")],
              "wrong?": [LAYOUT.format("2")]}
    with OpenAIStub(script) as stub:
        run = run_inline(services.scoring_run_create(user=None, pool=pool, model_spec=stub.spec(), n_samples=8,
                                                     adaptive=True, round_size=2, enqueue=False))
    by_q = {s.item.question: s for s in ItemScore.objects.filter(run=run).select_related("item")}
    assert by_q["<image>mixed?"].n_samples == 2  # one right + one wrong after round 1: Medium, stop
    assert by_q["<image>right?"].n_samples == 8 and by_q["<image>wrong?"].n_samples == 8
    assert run.generations == 18
    assert run.summary["buckets"] == {"easy": 1, "medium": 1, "hard": 1}


@pytest.mark.parametrize("confidence,generations", [(0.95, 40 * 4), (None, 40 * 16)])
def test_adaptive_stops_unanimous_items_once_the_fitted_prior_makes_the_bucket_likely(tmp_path, confidence,
                                                                                       generations):
    # 20 items always right and 20 always wrong: after one round of 4, the prior fitted on the run says pass
    # rates sit at 0 or 1, so 4/4 is Easy with probability 0.994 (>= 0.95) and every item stops. Without a
    # confidence target only certainty stops, and unanimous items need all 16 answers.
    rows = [(f"right {i}?", "1") for i in range(20)] + [(f"wrong {i}?", "1") for i in range(20)]
    pool, _ = make_pool(tmp_path, f"prior-{confidence}", rows)
    script = {q: [LAYOUT.format("1" if q.startswith("right") else "2")] for q, _ in rows}
    with OpenAIStub(script) as stub:
        run = run_inline(services.scoring_run_create(
            user=None, pool=pool, model_spec=stub.spec(), n_samples=16, adaptive=True, round_size=4,
            adaptive_confidence=confidence, enqueue=False))
    assert (run.adaptive_confidence, run.generations) == (confidence, generations)
    assert run.summary["buckets"] == {"easy": 20, "medium": 0, "hard": 20}
    assert sorted(set(ItemScore.objects.filter(run=run).values_list("n_samples", flat=True))) == [generations // 40]


def test_failures_are_reported_per_item_and_the_rest_finish(tmp_path, monkeypatch):
    pool, items = make_pool(tmp_path, "broken", [("fine?", "1"), ("gone?", "1")])
    gone = items[1].images()[0]
    (Path(settings.MEDIA_ROOT) / gone.relative_path).unlink()
    with OpenAIStub({"fine?": [LAYOUT.format("1")]}) as stub:
        run = run_inline(services.scoring_run_create(user=None, pool=pool, model_spec=stub.spec(), enqueue=False))
    assert (run.state, run.done, run.failed) == ("done", 1, 1)
    assert "image missing" in ItemScore.objects.get(run=run, item=items[1]).error

    monkeypatch.setenv("LOOKFIRST_ENDPOINT_TIMEOUT", "0.3")
    with OpenAIStub({"fine?": [LAYOUT.format("1")]}, delay=1.5) as slow:
        timed = run_inline(services.scoring_run_create(user=None, pool=pool, model_spec=slow.spec(), enqueue=False))
    assert (timed.state, timed.done, timed.failed) == ("done", 0, 2)
    assert "timed out" in ItemScore.objects.get(run=timed, item=items[0]).error

    missing_model = run_inline(services.scoring_run_create(
        user=None, pool=pool, model_spec=str(tmp_path / "no-such-model"), enqueue=False))
    assert (missing_model.state, missing_model.failed) == ("done", 2)
    assert "failed to load" in ItemScore.objects.get(run=missing_model, item=items[0]).error


def test_unknown_policy_and_bad_settings_are_refused_and_nothing_is_created(tmp_path):
    pool, _ = make_pool(tmp_path, "refused", [("Q?", "1")])
    with pytest.raises(services.ScoringError, match="unknown policy 'nope'; known: .*pebr"):
        services.scoring_run_create(user=None, pool=pool, model_spec="openai:http://127.0.0.1:1/v1#m",
                                    policy="nope", enqueue=False)
    with pytest.raises(services.ScoringError, match="n_samples"):
        services.scoring_run_create(user=None, pool=pool, model_spec="openai:http://127.0.0.1:1/v1#m", n_samples=0,
                                    enqueue=False)
    assert ScoringRun.objects.count() == 0


def test_viewer_cannot_start_a_scoring_run(tmp_path, viewer):
    from django.core.exceptions import PermissionDenied

    pool, _ = make_pool(tmp_path, "perm", [("Q?", "1")])
    with pytest.raises(PermissionDenied):
        services.scoring_run_create(user=viewer, pool=pool, model_spec="openai:http://x/v1#m", enqueue=False)
    assert ScoringRun.objects.count() == 0
