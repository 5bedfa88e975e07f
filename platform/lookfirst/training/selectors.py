from __future__ import annotations

from collections import defaultdict

from lookfirst.training.models import MetricPoint, StageRun, TrainingJob

CURVES = ("reward", "kl", "completion_length", "grad_norm", "learning_rate")


def job_curves(*, job: TrainingJob) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """{metric: {stage: [(global step, value)]}}; stages follow each other on one step axis."""
    curves: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    offset = 0
    for stage in StageRun.objects.filter(job=job).order_by("order"):
        last = 0
        for point in MetricPoint.objects.filter(stage=stage).order_by("line").only("step", "data"):
            last = max(last, point.step)
            for key, value in point.data.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and (
                        key in CURVES or key.startswith("reward/")):
                    curves[key][stage.name].append((offset + point.step, float(value)))
        offset += last
    return {k: dict(v) for k, v in sorted(curves.items())}


def job_evals(*, job: TrainingJob) -> list[dict]:
    return [{"stage": s.name, **(s.eval or {})} for s in StageRun.objects.filter(job=job).order_by("order")]
