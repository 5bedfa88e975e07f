"""Scoring pipeline benchmarks, each side by side in one run:

    .venv/bin/python bench/scoring.py sampling  [--items 64] [--model SPEC]
    .venv/bin/python bench/scoring.py clip      [--items 256] [--clip SPEC]
    .venv/bin/python bench/scoring.py adaptive  [--items 200] [--model lookfirst:shapes-vlm] [--live]
                                                [--round-size 2] [--confidence 0.9 0.95 ...]
    .venv/bin/python bench/scoring.py faiss     [--vectors 1000000] [--dim 128]

sampling: our scoring chunk (load images from the media folder, sample, extract, grade, write scores)
          vs a bare batched `generate` loop on the same model and prompts (goal >= 0.9x items/s).
clip:     our embedding path (ClipEncoder + stored vectors) vs a bare open_clip forward loop (>= 0.9x).
adaptive: generations and bucket agreement of adaptive sampling vs fixed N=16 (goal <= 0.6x, >= 95%); the
          adaptive rules replay the fixed run's answers, so only the stopping rule differs.
faiss:    HNSW recall@10 vs exact search, with build and query times (goal recall >= 0.95).
Default models are random tiny ones built on the spot (pipeline overhead does not depend on skill);
pass --model lookfirst:shapes-vlm for the built-in.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import django_setup, git_commit  # noqa: E402


def _pool(items: int, seed: int = 11):
    import uuid

    from lookfirst.ingest import services
    from workers.shapes import write_pool

    folder = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    path = write_pool(folder, n=items, seed=seed)
    return services.ingest_path(user=None, pool_name=f"bench-{uuid.uuid4().hex[:8]}", path=path).pool


def _tiny_vlm() -> str:
    from workers.models.tiny import tiny_vlm

    return str(tiny_vlm(Path(tempfile.mkdtemp(prefix="bench-vlm-"))))


def _tiny_clip() -> str:
    from workers.models.tiny import tiny_clip

    return "local-dir:" + str(tiny_clip(Path(tempfile.mkdtemp(prefix="bench-clip-"))))


def bench_sampling(args) -> None:
    from lookfirst.scoring import services
    from workers.inference.backends import get_sampler
    from workers.models.sampling import sample_answers

    spec = args.model or _tiny_vlm()
    pool = _pool(args.items)
    items = list(pool.items.order_by("id"))
    prompts = [(i.question, services._load_images(i)) for i in items]
    sampler = get_sampler(spec)  # load once, outside both timings
    settings = dict(n=8, temperature=1.2, top_p=0.99, max_new_tokens=args.max_tokens, seed=0)
    sample_answers(sampler.model, sampler.processor, prompts[:4], **settings)  # warm-up
    start = time.perf_counter()
    sample_answers(sampler.model, sampler.processor, prompts, **settings)
    bare = time.perf_counter() - start
    run = services.scoring_run_create(user=None, pool=pool, model_spec=spec, n_samples=8, temperature=1.2,
                                      top_p=0.99, max_new_tokens=args.max_tokens, enqueue=False,
                                      chunk_size=len(items))
    start = time.perf_counter()
    for chunk in services.scoring_run_chunks(run_id=run.pk):
        services.scoring_chunk_execute(run_id=run.pk, item_ids=chunk)
    ours = time.perf_counter() - start
    _report("sampling", f"{len(items)} items x 8 answers, max {args.max_tokens} tokens, {spec}",
            ("bare batched generate", len(items) / bare), ("LookFirst scoring", len(items) / ours), "items/s", 0.9)


def bench_clip(args) -> None:
    import torch

    from lookfirst.scoring.services import embeddings_get_or_compute
    from workers.inference.clip import get_clip
    from workers.shapes import render, sample_scene
    import random

    spec = args.clip or _tiny_clip()
    rng = random.Random(0)
    images = [render(sample_scene(rng)) for _ in range(args.items)]
    encoder = get_clip(spec)
    encoder.images(images[:32])  # warm-up, outside both timings
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(images), 64):
            batch = torch.stack([encoder.preprocess(img) for img in images[i:i + 64]])
            encoder.model.encode_image(batch)
    bare = time.perf_counter() - start
    payload = {f"bench-{time.time_ns()}-{i}": img for i, img in enumerate(images)}
    start = time.perf_counter()
    embeddings_get_or_compute(model_spec=spec, kind="image", payload=payload)
    ours = time.perf_counter() - start
    _report("clip", f"{len(images)} images, {spec}", ("bare open_clip forward", len(images) / bare),
            ("LookFirst embeddings (+store)", len(images) / ours), "images/s", 0.9)


class _ReplaySampler:
    """Hands out a finished run's stored answers in order, so a second stopping rule sees the same samples."""

    def __init__(self, answers: dict[tuple, list[str]]):
        self.answers, self.used = answers, {key: 0 for key in answers}

    @staticmethod
    def key(question: str, images) -> tuple:
        import hashlib

        return (question, tuple(hashlib.sha256(image.tobytes()).hexdigest() for image in images))

    def sample(self, prompts, settings) -> list:
        out = []
        for question, images in prompts:
            key = self.key(question, images)
            start = self.used[key]
            self.used[key] = start + settings.n
            out.append(self.answers[key][start : start + settings.n])
        return out


def bench_adaptive(args) -> None:
    """Fixed N=16 samples once; the adaptive rules then replay those same answers (no sampling noise between
    the two), so "same bucket" measures the stopping rule alone. --live adds an adaptive run sampled afresh."""
    from unittest import mock

    from lookfirst.scoring import policies, services
    from lookfirst.scoring.models import ItemScore

    spec = args.model or "lookfirst:shapes-vlm"
    pool = _pool(args.items, seed=args.pool_seed)

    def run(adaptive: bool, confidence: float | None, sampler=None, seed: int = 1):
        scoring_run = services.scoring_run_create(
            user=None, pool=pool, model_spec=spec, n_samples=16, temperature=1.2, top_p=0.99,
            max_new_tokens=args.max_tokens, adaptive=adaptive, adaptive_confidence=confidence,
            round_size=args.round_size,
            seed=seed, enqueue=False)
        start = time.perf_counter()
        with mock.patch("workers.inference.backends.get_sampler", lambda _spec: sampler) if sampler else contextlib.nullcontext():
            for chunk in services.scoring_run_chunks(run_id=scoring_run.pk):
                services.scoring_chunk_execute(run_id=scoring_run.pk, item_ids=chunk)
        scores = list(ItemScore.objects.filter(run=scoring_run, error="").select_related("item"))
        rules = scoring_run.policy.rules
        buckets = {s.item_id: policies.bucket_for(rules, s.n_correct or 0, s.n_samples) for s in scores}
        return scores, buckets, sum(s.n_samples for s in scores), time.perf_counter() - start

    fixed_scores, fixed, fixed_gens, fixed_s = run(False, None)
    answers = {_ReplaySampler.key(s.item.question, services._load_images(s.item)): [a["text"] for a in s.samples]
               for s in fixed_scores}
    print(f"commit {git_commit()} · adaptive vs fixed N=16 · {len(fixed)} items · {spec} · T 1.2, rounds of {args.round_size}")
    print(f"fixed N=16: {fixed_gens:,} generations in {fixed_s:.1f} s; buckets "
          f"{ {b: list(fixed.values()).count(b) for b in ('easy', 'medium', 'hard')} }")
    variants = [("replayed, exact rule only", None, True)]
    variants += [(f"replayed, confidence {c}", c, True) for c in args.confidence]
    if args.live:
        variants.append((f"sampled afresh, confidence {args.confidence[0]}", args.confidence[0], False))
        _, again, _, _ = run(False, None, seed=2)  # the noise floor: fixed N=16 twice, other seeds
        same = sum(1 for item, bucket in fixed.items() if again.get(item) == bucket) / max(len(fixed), 1)
        print(f"fixed N=16 sampled again (seed 2): same bucket {same:.1%}: what sampling noise alone allows")
    for label, confidence, replay in variants:
        _, buckets, gens, seconds = run(True, confidence, _ReplaySampler(answers) if replay else None)
        same = sum(1 for item, bucket in fixed.items() if buckets.get(item) == bucket) / max(len(fixed), 1)
        print(f"adaptive, {label}: {gens:,} generations ({gens / fixed_gens:.2f}x, goal <= 0.6); "
              f"same bucket {same:.1%} (goal >= 95%)" + ("" if replay else f"; {seconds:.1f} s"))


def bench_faiss(args) -> None:
    import numpy as np

    from workers.inference.neighbours import VectorIndex

    rng = np.random.default_rng(0)
    # Clustered data (like embeddings), not uniform noise: 2,000 centres, unit-normalised.
    centres = rng.normal(size=(2000, args.dim)).astype(np.float32)
    vectors = centres[rng.integers(0, 2000, args.vectors)] + 0.35 * rng.normal(size=(args.vectors, args.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.choice(args.vectors, args.queries, replace=False)]
    ids = list(range(args.vectors))
    timings = {}
    for kind in ("flat", "hnsw"):
        index = VectorIndex(args.dim, kind)
        start = time.perf_counter()
        for i in range(0, args.vectors, 100_000):
            index.add(ids[i:i + 100_000], vectors[i:i + 100_000])
        build = time.perf_counter() - start
        start = time.perf_counter()
        _, found = index.search(queries, 10)
        query = (time.perf_counter() - start) / args.queries
        timings[kind] = (build, query, found)
    exact = timings["flat"][2]
    approx = timings["hnsw"][2]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx, exact)])
    print(f"commit {git_commit()} · {args.vectors:,} x {args.dim}-d vectors · {args.queries} queries · k=10")
    for kind, (build, query, _) in timings.items():
        print(f"{kind:5} build {build:8.1f} s   query {1000 * query:8.2f} ms")
    print(f"HNSW recall@10 vs exact: {recall:.3f} (goal >= 0.95)")


def _report(name, setup, bare, ours, unit, goal) -> None:
    print(f"commit {git_commit()} · {name} · {setup}")
    for label, value in (bare, ours):
        print(f"{label:32}{value:10.2f} {unit}")
    print(f"ratio {ours[1] / bare[1]:.2f} (goal >= {goal})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", choices=("sampling", "clip", "adaptive", "faiss"))
    parser.add_argument("--items", type=int, default=None)
    parser.add_argument("--model", default="")
    parser.add_argument("--clip", default="")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--live", action="store_true", help="adaptive: also run adaptive sampling afresh (slow)")
    parser.add_argument("--pool-seed", type=int, default=4242, help="adaptive: the shapes pool's seed")
    parser.add_argument("--round-size", type=int, default=2, help="adaptive: answers per item per round")
    parser.add_argument("--confidence", type=float, nargs="+", default=[0.9, 0.95], help="adaptive: targets to replay")
    args = parser.parse_args()
    args.items = args.items or {"sampling": 64, "clip": 256, "adaptive": 200}.get(args.bench, 0)
    if args.bench != "faiss":
        django_setup()
        from django.conf import settings

        settings.MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="bench-media-"))
    {"sampling": bench_sampling, "clip": bench_clip, "adaptive": bench_adaptive, "faiss": bench_faiss}[args.bench](args)


if __name__ == "__main__":
    main()
