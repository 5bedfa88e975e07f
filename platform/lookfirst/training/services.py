"""Staged GRPO jobs: admins launch, a `training`-queue worker runs `python -m trainer run` and follows it.

The trainer only reads files and writes files (it never imports Django). This module turns a snapshot
into an export the trainer reads, starts the trainer in its own process group, and copies what it
writes (OUT/status.json, OUT/<stage>/metrics.jsonl, OUT/<stage>/eval.json, OUT/summary.json) into the
database once a second, so the UI can show progress and curves while it runs.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import yaml
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from lookfirst.runtime.tasks import send_task
from lookfirst.accounts.roles import Role, check_role
from lookfirst.training.models import RECIPES, MetricPoint, StageRun, TrainingJob

ROOT = Path(__file__).resolve().parents[3]
CONFIG_DIR = ROOT / "trainer" / "configs"
EXPORT_RULE = {"pebr-2stage": "pebr-2stage", "capcurriculum-3stage": "capcurriculum-3stage", "merged": "merged"}


class TrainingError(ValueError):
    pass


def training_job_create(*, user, snapshot, recipe: str, model_spec: str, clip_spec: str = "",
                        config_name: str = "cpu-demo.yaml", overrides: dict | None = None,
                        enqueue: bool = True) -> TrainingJob:
    """Only admins launch training. Everything is checked before anything is recorded."""
    check_role(user, Role.ADMIN)
    if recipe not in RECIPES:
        raise TrainingError(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}")
    if not (CONFIG_DIR / config_name).is_file() or "/" in config_name:
        known = ", ".join(sorted(p.name for p in CONFIG_DIR.glob("*.yaml")))
        raise TrainingError(f"unknown config {config_name!r}; known: {known}")
    if model_spec.startswith("openai:"):
        raise TrainingError("an OpenAI-compatible endpoint can sample but cannot be trained; give a model folder, "
                            "a hub id or lookfirst:shapes-vlm")
    if overrides is not None and not isinstance(overrides, dict):
        raise TrainingError("overrides must be a mapping of config fields to values")
    with transaction.atomic():
        job = TrainingJob.objects.create(snapshot=snapshot, recipe=recipe, model_spec=model_spec,
                                         clip_spec=clip_spec, config_name=config_name, overrides=overrides or {},
                                         created_by=user)
        # Unique even when a fresh database restarts ids over an old LOOKFIRST_HOME.
        job.out_dir = str(Path(settings.LOOKFIRST_HOME) / "training" / f"job-{job.pk}-{uuid.uuid4().hex[:8]}")
        job.save(update_fields=["out_dir"])
        if enqueue:
            transaction.on_commit(lambda: send_task("workers.tasks.training.run", job.pk, queue="training"))
    return job


def training_job_cancel(*, user, job: TrainingJob) -> None:
    check_role(user, Role.ADMIN)
    TrainingJob.objects.filter(pk=job.pk, state__in=[TrainingJob.State.QUEUED, TrainingJob.State.RUNNING]).update(
        cancel_requested=True)


def training_job_resume(*, user, job: TrainingJob) -> TrainingJob:
    check_role(user, Role.ADMIN)
    if job.state not in (TrainingJob.State.CANCELLED, TrainingJob.State.FAILED):
        raise TrainingError(f"only a cancelled or failed job can resume (this one is {job.state})")
    TrainingJob.objects.filter(pk=job.pk).update(state=TrainingJob.State.QUEUED, cancel_requested=False, error="")
    transaction.on_commit(lambda: send_task("workers.tasks.training.run", job.pk, True, queue="training"))
    job.refresh_from_db()
    return job


def _model_path(spec: str) -> str:
    """What the trainer's --model takes: a folder or a hub id. Built-ins are built (or loaded) here."""
    from workers.models.specs import parse_spec

    parsed = parse_spec(spec)
    if parsed.kind == "builtin":
        from workers.models.builtin import ensure_builtin

        return str(ensure_builtin(parsed.name))
    if parsed.kind == "local":
        return parsed.path
    if parsed.kind == "hub":
        return parsed.name
    raise TrainingError(f"{spec} is not a trainable model spec")


def _clip_arg(spec: str) -> str:
    if not spec:
        return ""
    from workers.models.specs import parse_spec

    parsed = parse_spec(spec)
    if parsed.kind == "builtin":
        from workers.models.builtin import ensure_builtin

        return "local-dir:" + str(ensure_builtin(parsed.name))
    return spec


def training_job_execute(*, job_id: int, resume: bool = False, poll: float = 1.0) -> TrainingJob:
    """Export the snapshot (once), run the trainer, follow its files into the database until it exits."""
    job = TrainingJob.objects.select_related("snapshot").get(pk=job_id)
    if job.state == TrainingJob.State.DONE:
        return job
    TrainingJob.objects.filter(pk=job.pk).update(state=TrainingJob.State.RUNNING, started_at=timezone.now())
    try:
        export = _ensure_export(job)
        command = _command(job, export, resume=resume or Path(job.out_dir, "status.json").exists())
    except Exception as exc:  # export or model resolution failed: the job says why
        TrainingJob.objects.filter(pk=job.pk).update(state=TrainingJob.State.FAILED, error=str(exc),
                                                     finished_at=timezone.now())
        job.refresh_from_db()
        return job
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "trainer.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
                                   preexec_fn=_stop_with_parent)
        follower = _Follower(job)
        cancelled = False
        while process.poll() is None:
            follower.sync()
            if not cancelled and TrainingJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
                os.killpg(process.pid, signal.SIGTERM)  # the trainer saves the current stage and stops
                cancelled = True
            time.sleep(poll)
        follower.sync()
    status = _read_json(out / "status.json") or {}
    state = {"done": TrainingJob.State.DONE, "cancelled": TrainingJob.State.CANCELLED}.get(
        status.get("state"), TrainingJob.State.FAILED)
    tail = log_path.read_text(errors="replace")[-4000:] if log_path.exists() else ""
    TrainingJob.objects.filter(pk=job.pk).update(
        state=state, finished_at=timezone.now(), summary=_read_json(out / "summary.json") or {}, log_tail=tail,
        error="" if state != TrainingJob.State.FAILED else (status.get("message") or tail[-1000:]))
    job.refresh_from_db()
    return job


def _ensure_export(job: TrainingJob):
    from lookfirst.snapshots.models import Export
    from lookfirst.snapshots.services import export_create, export_execute

    if job.export_id and job.export.state == Export.State.DONE:
        return job.export
    export = export_create(user=None, snapshot=job.snapshot, fmt="trl", rule=EXPORT_RULE[job.recipe], enqueue=False)
    export = export_execute(export_id=export.pk)
    if export.state != Export.State.DONE:
        raise TrainingError(f"export #{export.pk} failed: {export.error}")
    TrainingJob.objects.filter(pk=job.pk).update(export=export)
    return export


def _command(job: TrainingJob, export, resume: bool) -> list[str]:
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((CONFIG_DIR / job.config_name).read_text()) or {}
    config.update(job.overrides or {})
    config_path = out / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=True))
    command = [sys.executable, "-m", "trainer", "run", "--data", export.out_dir, "--recipe", job.recipe,
               "--model", _model_path(job.model_spec), "--out", str(out), "--config", str(config_path)]
    clip = _clip_arg(job.clip_spec)
    if clip:
        command += ["--clip", clip]
    if resume:
        command.append("--resume")
    return command


class _Follower:
    """Copies the trainer's files into StageRun / MetricPoint rows; safe to call any number of times."""

    def __init__(self, job: TrainingJob) -> None:
        self.job = job
        self.out = Path(job.out_dir)

    def sync(self) -> None:
        status = _read_json(self.out / "status.json")
        if not status:
            return
        for order, name in enumerate(status.get("stages", [])):
            stage, _ = StageRun.objects.get_or_create(job=self.job, name=name, defaults={"order": order})
            self._metrics(stage)
            evaluation = _read_json(self.out / name / "eval.json")
            updates = {}
            if name in status.get("stages_done", []):
                updates["state"] = "done"
            elif status.get("stage") == name:
                updates.update(state=status.get("state", "running"), step=status.get("step") or 0,
                               total_steps=status.get("total_steps"))
            if evaluation is not None:
                updates["eval"] = evaluation
            if (self.out / name / "model").is_dir():
                updates["model_dir"] = str(self.out / name / "model")
            if updates:
                StageRun.objects.filter(pk=stage.pk).update(**updates)

    def _metrics(self, stage: StageRun) -> None:
        path = self.out / stage.name / "metrics.jsonl"
        if not path.exists():
            return
        known = stage.points.count()
        new = []
        with open(path) as fh:
            for number, line in enumerate(fh, 1):
                if number <= known or not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError:
                    break  # a line being written; the next sync reads it whole
                new.append(MetricPoint(stage=stage, line=number, step=int(data.get("step", 0)), data=data))
        MetricPoint.objects.bulk_create(new, ignore_conflicts=True)
        if new:
            StageRun.objects.filter(pk=stage.pk).update(step=max(p.step for p in new))


def _stop_with_parent() -> None:
    """In the trainer's process: get SIGTERM when the worker that started it dies (Linux prctl).

    The trainer then saves its stage and stops as if cancelled, so stopping the product (Ctrl-C on `up`,
    a killed worker) never leaves a training process behind, and the job can be resumed.
    """
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
