from __future__ import annotations

import json

import pytest
from django.core.exceptions import PermissionDenied

from lookfirst.snapshots.services import snapshot_create
from lookfirst.training import selectors, services
from lookfirst.training.models import MetricPoint, StageRun, TrainingJob
from tests.scoring.conftest import make_pool

pytestmark = pytest.mark.django_db


@pytest.fixture
def snapshot(tmp_path, curator):
    pool, _ = make_pool(tmp_path, "train", [("Q1?", "1"), ("Q2?", "2")])
    return snapshot_create(user=curator, pool=pool, name="v1")


@pytest.mark.parametrize("role", ["viewer", "curator"])
def test_only_admins_launch_and_refusals_create_nothing(role, snapshot, viewer, curator):
    user = {"viewer": viewer, "curator": curator}[role]
    with pytest.raises(PermissionDenied):
        services.training_job_create(user=user, snapshot=snapshot, recipe="pebr-2stage",
                                     model_spec="lookfirst:shapes-vlm", enqueue=False)
    assert TrainingJob.objects.count() == 0


def test_bad_launches_are_refused_with_reasons(snapshot, admin_user):
    cases = [({"recipe": "reverse"}, "unknown recipe 'reverse'"),
             ({"config_name": "nope.yaml"}, "unknown config 'nope.yaml'; known: .*cpu-demo.yaml"),
             ({"model_spec": "openai:http://127.0.0.1:1/v1#m"}, "cannot be trained")]
    for change, message in cases:
        kwargs = {"recipe": "pebr-2stage", "model_spec": "lookfirst:shapes-vlm", **change}
        with pytest.raises(services.TrainingError, match=message):
            services.training_job_create(user=admin_user, snapshot=snapshot, enqueue=False, **kwargs)
    assert TrainingJob.objects.count() == 0


def test_follower_copies_the_trainer_files_once(snapshot, admin_user, tmp_path):
    job = services.training_job_create(user=admin_user, snapshot=snapshot, recipe="pebr-2stage",
                                       model_spec="lookfirst:shapes-vlm", enqueue=False)
    out = tmp_path / "out"
    TrainingJob.objects.filter(pk=job.pk).update(out_dir=str(out))
    job.refresh_from_db()
    (out / "perception" / "model").mkdir(parents=True)
    (out / "reasoning").mkdir()
    (out / "status.json").write_text(json.dumps({"state": "running", "stages": ["perception", "reasoning"],
                                                 "stage": "reasoning", "step": 1, "total_steps": 4,
                                                 "stages_done": ["perception"]}))
    lines = [{"step": 1, "reward": 0.25, "reward/clip": 0.5, "kl": 0.0}, {"step": 2, "reward": 0.5, "reward/clip": 0.75}]
    (out / "perception" / "metrics.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines))
    (out / "perception" / "eval.json").write_text(json.dumps({"accuracy": 0.5, "n_items": 2}))
    (out / "reasoning" / "metrics.jsonl").write_text(json.dumps({"step": 1, "reward": 0.9}) + "\n" + '{"step": 2, "rew')

    follower = services._Follower(job)
    follower.sync()
    follower.sync()  # twice: nothing doubles

    perception, reasoning = StageRun.objects.filter(job=job).order_by("order")
    assert (perception.name, perception.state, perception.step, perception.eval) == (
        "perception", "done", 2, {"accuracy": 0.5, "n_items": 2})
    assert perception.model_dir == str(out / "perception" / "model")
    assert (reasoning.state, reasoning.step, reasoning.total_steps) == ("running", 1, 4)
    assert MetricPoint.objects.filter(stage=perception).count() == 2
    assert MetricPoint.objects.filter(stage=reasoning).count() == 1  # the half-written line waits
    curves = selectors.job_curves(job=job)
    assert curves["reward"] == {"perception": [(1, 0.25), (2, 0.5)], "reasoning": [(3, 0.9)]}
    assert curves["reward/clip"] == {"perception": [(1, 0.5), (2, 0.75)]}


def test_cancel_and_resume_rules(snapshot, admin_user, curator):
    job = services.training_job_create(user=admin_user, snapshot=snapshot, recipe="merged",
                                       model_spec="lookfirst:shapes-vlm", enqueue=False)
    with pytest.raises(PermissionDenied):
        services.training_job_cancel(user=curator, job=job)
    assert not TrainingJob.objects.get(pk=job.pk).cancel_requested
    services.training_job_cancel(user=admin_user, job=job)
    assert TrainingJob.objects.get(pk=job.pk).cancel_requested
    with pytest.raises(services.TrainingError, match="only a cancelled or failed job"):
        services.training_job_resume(user=admin_user, job=job)
