"""Scoring: sample N answers per item, grade them, embed with CLIP, and set buckets.

Flow: `scoring_run_create` (validates, records, queues after commit) -> task `dispatch` splits the
items into chunks -> task `chunk` per chunk calls `scoring_chunk_execute` on a `gpu`-queue worker.
Each (run, item) is written once (unique constraint + ON CONFLICT DO NOTHING), so a chunk that runs
twice (worker killed, message redelivered) neither loses nor doubles a score. The last chunk to
finish finalises the run (CLIP percentiles per source, summary) under a row lock.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Iterable

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from lookfirst.runtime.tasks import send_task
from lookfirst.accounts.roles import Role, check_role
from lookfirst.pools.models import Bucket, BucketSource, Item, Pool
from lookfirst.scoring import policies
from lookfirst.scoring.models import BucketPolicy, ClipEmbedding, ItemScore, ScoringRun


class ScoringError(ValueError):
    pass


def policies_ensure() -> None:
    """Make sure the built-in bucket policies exist (a migration seeds them; a flushed database loses them)."""
    for name, (description, rules, sort, reference_n) in policies.BUILTIN_POLICIES.items():
        BucketPolicy.objects.get_or_create(name=name, defaults={
            "description": description, "rules": rules, "sort": sort, "reference_n": reference_n, "builtin": True})


def scoring_run_create(
    *, user, pool: Pool, model_spec: str, clip_spec: str = "", n_samples: int = 8, temperature: float = 1.2,
    top_p: float = 0.99, max_new_tokens: int = 2048, seed: int = 0, policy: str = "pebr", adaptive: bool = False,
    adaptive_confidence: float | None = 0.9, round_size: int = 2, item_ids: list[int] | None = None,
    chunk_size: int = 32, enqueue: bool = True,
) -> ScoringRun:
    if user is not None:
        check_role(user, Role.CURATOR)
    from workers.models.specs import SpecError, parse_spec

    try:
        parse_spec(model_spec)
        if clip_spec:
            parse_spec(clip_spec)
    except SpecError as exc:
        raise ScoringError(str(exc)) from None
    if n_samples < 1 or not (0 < top_p <= 1) or temperature < 0:
        raise ScoringError("need n_samples >= 1, 0 < top_p <= 1 and temperature >= 0")
    if round_size < 1 or (adaptive_confidence is not None and not 0.5 <= adaptive_confidence < 1):
        raise ScoringError("need round_size >= 1 and adaptive_confidence in [0.5, 1), or None (stop only when certain)")
    policies_ensure()
    try:
        bucket_policy = BucketPolicy.objects.get(name=policy)
    except BucketPolicy.DoesNotExist:
        known = ", ".join(BucketPolicy.objects.values_list("name", flat=True))
        raise ScoringError(f"unknown policy {policy!r}; known: {known}") from None
    items = Item.objects.filter(pool=pool, excluded=False)
    if item_ids is not None:
        items = items.filter(pk__in=item_ids)
    with transaction.atomic():
        run = ScoringRun.objects.create(
            pool=pool, selection=sorted(item_ids) if item_ids is not None else None, model_spec=model_spec,
            clip_spec=clip_spec, n_samples=n_samples, temperature=temperature, top_p=top_p,
            max_new_tokens=max_new_tokens, seed=seed, policy=bucket_policy, adaptive=adaptive,
            adaptive_confidence=adaptive_confidence if adaptive else None, chunk_size=chunk_size,
            round_size=round_size, total=items.count(), created_by=user,
        )
        if enqueue:
            transaction.on_commit(lambda: send_task("workers.tasks.scoring.dispatch", run.pk, queue="cpu"))
    return run


def scoring_run_chunks(*, run_id: int) -> list[list[int]]:
    """The run's item ids, in chunks; starts the run."""
    run = ScoringRun.objects.get(pk=run_id)
    items = Item.objects.filter(pool_id=run.pool_id, excluded=False)
    if run.selection is not None:
        items = items.filter(pk__in=run.selection)
    ids = list(items.order_by("id").values_list("id", flat=True))
    ScoringRun.objects.filter(pk=run_id, state=ScoringRun.State.QUEUED).update(
        state=ScoringRun.State.RUNNING, started_at=timezone.now(), total=len(ids))
    if not ids:
        scoring_run_finalize(run_id=run_id)
    return [ids[i:i + run.chunk_size] for i in range(0, len(ids), run.chunk_size)]


def scoring_run_dispatch(*, run_id: int) -> int:
    chunks = scoring_run_chunks(run_id=run_id)
    for chunk in chunks:
        send_task("workers.tasks.scoring.chunk", run_id, chunk, queue="gpu")
    return len(chunks)


def scoring_chunk_execute(*, run_id: int, item_ids: list[int]) -> int:
    """Score the chunk's items that this run has not scored yet. Returns how many were written."""
    run = ScoringRun.objects.select_related("policy").get(pk=run_id)
    already = set(ItemScore.objects.filter(run=run, item_id__in=item_ids).values_list("item_id", flat=True))
    items = list(Item.objects.filter(pk__in=[i for i in item_ids if i not in already]).order_by("id"))
    if not items:
        _maybe_finalize(run_id)
        return 0
    rows = _score_items(run, items)
    with transaction.atomic():
        ItemScore.objects.bulk_create(rows, ignore_conflicts=True)
        n_ok = sum(1 for r in rows if not r.error)
        n_failed = len(rows) - n_ok
        ScoringRun.objects.filter(pk=run_id).update(
            done=F("done") + n_ok, failed=F("failed") + n_failed,
            generations=F("generations") + sum(r.n_samples for r in rows))
        items_refresh(item_ids=[r.item_id for r in rows if not r.error], run=run)
    _maybe_finalize(run_id)
    return len(rows)


def _score_items(run: ScoringRun, items: list[Item]) -> list[ItemScore]:
    from trainer.verify import extract_answer, grade, majority_vote
    from workers.inference.backends import EndpointError, SampleSettings, get_sampler

    rows: dict[int, ItemScore] = {}
    loaded: list[tuple[Item, list]] = []
    for item in items:
        try:
            loaded.append((item, _load_images(item)))
        except FileNotFoundError as exc:
            rows[item.pk] = ItemScore(run=run, item=item, error=f"image missing: {exc}")
    try:
        sampler = get_sampler(run.model_spec)
    except Exception as exc:  # any load failure is reported per item; the run still finishes
        for item, _ in loaded:
            rows[item.pk] = ItemScore(run=run, item=item, error=f"model {run.model_spec} failed to load: {exc}")
        return [rows[i.pk] for i in items]
    answers = _sample(sampler, run, loaded, SampleSettings)
    clip = _clip_scores(run, loaded) if run.clip_spec else {}
    for (item, _), texts in zip(loaded, answers):
        if isinstance(texts, (EndpointError, Exception)):
            rows[item.pk] = ItemScore(run=run, item=item, error=str(texts))
            continue
        texts = [t.replace("\x00", "\ufffd") for t in texts]  # PostgreSQL text cannot hold NUL bytes
        extracted = [extract_answer(t) for t in texts]
        truth = item.answer
        kind = item.answer_type if item.answer_type != "none" else "auto"
        majority, agreement = majority_vote(extracted, kind)
        if truth is None:
            truth_for_grading = majority  # label-free: grade against the majority vote (pseudo-label)
        else:
            truth_for_grading = truth
        correct = [truth_for_grading is not None and grade(e, truth_for_grading, kind) for e in extracted]
        k, n = sum(correct), len(texts)
        low, high = policies.wilson_interval(k, n)
        sims = clip.get(item.pk, {})
        rows[item.pk] = ItemScore(
            run=run, item=item, n_samples=n, n_correct=k, pass_rate=k / n if n else None, wilson_low=low,
            wilson_high=high, majority_answer=majority, majority_agreement=agreement,
            samples=[{"text": t, "extracted": e, "correct": c} for t, e, c in zip(texts, extracted, correct)],
            clip_question=sims.get("question"), clip_answer=sims.get("answer"),
            clip_description=sims.get("description"),
        )
    return [rows[i.pk] for i in items]


def _sample(sampler, run: ScoringRun, loaded, SampleSettings) -> list:
    """Fixed N: one call. Adaptive: rounds of `round_size`; an item stops once `policies.can_stop` says so."""
    from trainer.verify import extract_answer, grade

    prompts = [(item.question, images) for item, images in loaded]
    if not run.adaptive:
        return sampler.sample(prompts, SampleSettings(run.n_samples, run.temperature, run.top_p,
                                                      run.max_new_tokens, run.seed))
    rules = run.policy.rules
    finished = _prior_counts(run) if run.adaptive_confidence is not None else []
    texts: list = [[] for _ in loaded]
    correct = [0] * len(loaded)
    open_ = list(range(len(loaded)))
    round_no = 0
    while open_:
        size = min(run.round_size, min(run.n_samples - len(texts[i]) for i in open_))
        batch = sampler.sample([prompts[i] for i in open_],
                               SampleSettings(size, run.temperature, run.top_p, run.max_new_tokens,
                                              run.seed + 7919 * round_no))
        round_no += 1
        for i, got in zip(open_, batch):
            if isinstance(got, Exception):
                texts[i] = got
                continue
            texts[i].extend(got)
            item = loaded[i][0]
            if item.answer is not None:
                kind = item.answer_type if item.answer_type != "none" else "auto"
                correct[i] += sum(grade(extract_answer(t), item.answer, kind) for t in got)
        graded = [i for i, (item, _) in enumerate(loaded) if item.answer is not None and isinstance(texts[i], list)]
        prior = None
        if run.adaptive_confidence is not None:
            prior = policies.fit_prior(finished + [(correct[i], len(texts[i])) for i in graded])
        still_open = []
        for i in open_:
            if isinstance(texts[i], Exception) or len(texts[i]) >= run.n_samples:
                continue
            if loaded[i][0].answer is None:
                still_open.append(i)  # label-free items need the full vote
            elif not policies.can_stop(rules, correct[i], len(texts[i]), run.n_samples, prior,
                                       run.adaptive_confidence):
                still_open.append(i)
        open_ = still_open
    return texts


PRIOR_RECENT_ITEMS = 2000  # the pass-rate prior of an adaptive run is fitted on at most this many scored items


def _prior_counts(run: ScoringRun) -> list[tuple[int, int]]:
    """(correct, sampled) of the items this run has already scored, most recent first, for `fit_prior`."""
    rows = (ItemScore.objects.filter(run=run, error="", item__answer__isnull=False, n_samples__gt=0)
            .order_by("-id").values_list("n_correct", "n_samples")[:PRIOR_RECENT_ITEMS])
    return list(rows)


def _clip_scores(run: ScoringRun, loaded) -> dict[int, dict[str, float]]:
    """Cosine of each item's first image with its question, answer and description."""
    import numpy as np

    images = {item.image_shas[0]: imgs[0] for item, imgs in loaded}
    image_vecs = embeddings_get_or_compute(model_spec=run.clip_spec, kind="image", payload=images)
    texts: dict[str, str] = {}
    for item, _ in loaded:
        for text in (item.question.replace("<image>", " ").strip(), item.answer, item.description):
            if text:
                texts[_text_key(text)] = text
    text_vecs = embeddings_get_or_compute(model_spec=run.clip_spec, kind="text", payload=texts)
    out: dict[int, dict[str, float]] = {}
    for item, _ in loaded:
        image = image_vecs[item.image_shas[0]]
        sims: dict[str, float] = {}
        for name, text in (("question", item.question.replace("<image>", " ").strip()), ("answer", item.answer),
                           ("description", item.description)):
            if text:
                sims[name] = float(np.dot(image, text_vecs[_text_key(text)]))
        out[item.pk] = sims
    return out


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def embeddings_get_or_compute(*, model_spec: str, kind: str, payload: dict) -> dict:
    """Stored vectors for `payload` keys; the missing ones are computed in batches and stored."""
    import numpy as np

    found = {e.key: np.frombuffer(bytes(e.vector), dtype=np.float32)
             for e in ClipEmbedding.objects.filter(model_key=model_spec, kind=kind, key__in=list(payload))}
    missing = [k for k in payload if k not in found]
    if missing:
        from workers.inference.clip import get_clip

        encoder = get_clip(model_spec)
        vectors = (encoder.images if kind == "image" else encoder.texts)([payload[k] for k in missing])
        ClipEmbedding.objects.bulk_create(
            [ClipEmbedding(model_key=model_spec, kind=kind, key=k, vector=v.astype(np.float32).tobytes())
             for k, v in zip(missing, vectors)], ignore_conflicts=True)
        found.update(zip(missing, vectors.astype(np.float32)))
    return found


def _load_images(item: Item) -> list:
    from PIL import Image as PILImage

    images = []
    for image in item.images():
        path = Path(settings.MEDIA_ROOT) / image.relative_path
        with PILImage.open(path) as img:
            images.append(img.convert("RGB"))
    if len(images) != len(item.image_shas):
        raise FileNotFoundError(f"{len(item.image_shas) - len(images)} image record(s) missing")
    return images


def items_refresh(*, item_ids: Iterable[int], run: ScoringRun) -> None:
    """Recompute each item's pooled pass rate and bucket from every run with the same settings.

    Curator buckets are kept (the scores still update, so a curator sees new evidence).
    """
    key_runs = [r.pk for r in ScoringRun.objects.filter(pool_id=run.pool_id) if r.settings_key() == run.settings_key()]
    totals = {
        row["item_id"]: row for row in ItemScore.objects.filter(run_id__in=key_runs, item_id__in=list(item_ids),
                                                                error="")
        .values("item_id").annotate(k=Sum("n_correct"), n=Sum("n_samples"))
    }
    latest = {s.item_id: s for s in ItemScore.objects.filter(run=run, item_id__in=list(item_ids))}
    rules, reference_n = run.policy.rules, run.policy.reference_n
    updated = []
    for item in Item.objects.filter(pk__in=list(totals)).select_for_update():
        k, n = totals[item.pk]["k"] or 0, totals[item.pk]["n"] or 0
        verdict = policies.verdict(rules, k, n, max(reference_n, 1))
        score = latest.get(item.pk)
        item.n_correct, item.n_samples = k, n
        item.pass_rate = k / n if n else None
        item.wilson_low, item.wilson_high = verdict.wilson_low, verdict.wilson_high
        if score is not None and score.clip_question is not None:
            item.clip_sim = score.clip_question
        if item.answer is None and score is not None:
            item.pseudo_answer, item.pseudo_agreement = score.majority_answer, score.majority_agreement
        if item.bucket_source != BucketSource.CURATOR:
            item.bucket, item.bucket_policy = verdict.bucket, run.policy.name
            if item.answer is None:
                item.bucket_source = BucketSource.PSEUDO_LABEL
                item.bucket_confidence = item.pseudo_agreement
            else:
                item.bucket_source = BucketSource.SCORED
                item.bucket_confidence = verdict.confidence
        updated.append(item)
    Item.objects.bulk_update(updated, ["n_correct", "n_samples", "pass_rate", "wilson_low", "wilson_high", "clip_sim",
                                       "pseudo_answer", "pseudo_agreement", "bucket", "bucket_policy",
                                       "bucket_source", "bucket_confidence"])


def _maybe_finalize(run_id: int) -> None:
    run = ScoringRun.objects.get(pk=run_id)
    if run.state == ScoringRun.State.RUNNING and run.done + run.failed >= run.total:
        scoring_run_finalize(run_id=run_id)


def scoring_run_finalize(*, run_id: int) -> ScoringRun:
    with transaction.atomic():
        run = ScoringRun.objects.select_for_update().get(pk=run_id)
        if run.state == ScoringRun.State.DONE:
            return run
        # Truth from the table, not the counters: a redelivered chunk may have bumped them twice.
        scores = ItemScore.objects.filter(run=run)
        run.done = scores.filter(error="").count()
        run.failed = scores.exclude(error="").count()
        if run.done + run.failed < run.total:
            return run
        clip_percentiles_refresh(pool_id=run.pool_id)
        buckets = Counter(Item.objects.filter(scores__run=run).values_list("bucket", flat=True))
        run.summary = {
            "buckets": {b: buckets.get(b, 0) for b in (Bucket.EASY, Bucket.MEDIUM, Bucket.HARD)},
            "failed": run.failed,
            "errors": list(scores.exclude(error="").values("item_id", "error")[:100]),
            "generations": int(scores.aggregate(g=Sum("n_samples"))["g"] or 0),
        }
        run.generations = run.summary["generations"]
        run.state, run.finished_at = ScoringRun.State.DONE, timezone.now()
        run.save()
    if run.clip_spec:
        from lookfirst.scoring.similarity import near_duplicates_refresh

        near_duplicates_refresh(pool=run.pool, model_spec=run.clip_spec)
    return run


def clip_percentiles_refresh(*, pool_id: int) -> None:
    """clip_pct = percentile of clip_sim among items of the same source (questions score lower than captions)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE pools_item i SET clip_pct = r.pct FROM ("
            "  SELECT id, percent_rank() OVER (PARTITION BY source ORDER BY clip_sim) AS pct"
            "  FROM pools_item WHERE pool_id = %s AND clip_sim IS NOT NULL) r "
            "WHERE i.id = r.id",
            [pool_id],
        )


