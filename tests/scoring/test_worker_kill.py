"""A real worker is SIGKILLed in the middle of a run; a new one finishes it. No score lost, none doubled."""
from __future__ import annotations

import pytest

from lookfirst.scoring import services
from lookfirst.scoring.models import ItemScore, ScoringRun
from tests.openai_stub import OpenAIStub
from tests.scoring.conftest import make_pool
from tests.worker import WorkerProcess, wait_for

LAYOUT = "### Image Description: x\n### Rationales: y\n### Step 1: z\n### The final answer is: {}"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_killed_worker_mid_run_loses_and_doubles_nothing(tmp_path):
    rows = [(f"question {i}?", str(i % 3)) for i in range(24)]
    pool, items = make_pool(tmp_path, "killed", rows)
    script = {q: [LAYOUT.format(a)] * 3 + [LAYOUT.format("x")] for q, a in rows}
    fast_restore = {"LOOKFIRST_VISIBILITY_TIMEOUT": "4", "LOOKFIRST_RESTORE_INTERVAL": "1",
                    "LOOKFIRST_RESTORE_THROTTLE": "1"}
    with OpenAIStub(script, delay=0.4) as stub:
        first = WorkerProcess(queues="cpu,gpu", extra_env=fast_restore).start()
        try:
            run = services.scoring_run_create(user=None, pool=pool, model_spec=stub.spec(), n_samples=4,
                                              chunk_size=3)
            wait_for(lambda: ItemScore.objects.filter(run=run).count() >= 6, timeout=60, worker=first)
        finally:
            first.kill()
        scored_at_kill = ItemScore.objects.filter(run=run).count()
        assert scored_at_kill < len(rows), "the run finished before the kill: make the stub slower"

        second = WorkerProcess(queues="cpu,gpu", extra_env=fast_restore).start()
        try:
            def finished():
                run.refresh_from_db()
                return run.state == ScoringRun.State.DONE

            wait_for(finished, timeout=120, worker=second)
        finally:
            second.stop()

    per_item = list(ItemScore.objects.filter(run=run).values_list("item_id", flat=True))
    assert sorted(per_item) == sorted(i.pk for i in items)  # exactly one score per item
    assert (run.done, run.failed, run.total) == (24, 0, 24)
    assert {s.n_correct for s in ItemScore.objects.filter(run=run)} == {3}
    assert run.summary["buckets"] == {"easy": 0, "medium": 24, "hard": 0}
