"""Nearest neighbours over CLIP image embeddings: near-duplicate groups, "more like this", contamination."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from lookfirst.pools.models import Item, Pool
from lookfirst.scoring.models import ClipEmbedding

NEAR_DUPLICATE_COSINE = 0.95


@dataclass(frozen=True)
class Neighbour:
    item_id: int
    similarity: float


def _index_path(pool: Pool, model_spec: str) -> Path:
    digest = hashlib.sha256(model_spec.encode()).hexdigest()[:16]
    return Path(settings.LOOKFIRST_HOME) / "faiss" / f"pool-{pool.pk}" / f"{digest}.index"


def _item_vectors(pool: Pool, model_spec: str, item_ids: list[int] | None = None):
    """(item ids, matrix) of each item's first-image embedding, for the items that have one."""
    import numpy as np

    items = Item.objects.filter(pool=pool, excluded=False)
    if item_ids is not None:
        items = items.filter(pk__in=item_ids)
    first_image = dict(items.values_list("id", "image_shas__0"))
    vectors = {e.key: np.frombuffer(bytes(e.vector), dtype=np.float32)
               for e in ClipEmbedding.objects.filter(model_key=model_spec, kind="image",
                                                     key__in=set(first_image.values()))}
    ids = sorted(i for i, sha in first_image.items() if sha in vectors)
    if not ids:
        return [], np.zeros((0, 0), dtype=np.float32)
    return ids, np.stack([vectors[first_image[i]] for i in ids])


def pool_index_refresh(*, pool: Pool, model_spec: str):
    """Load the pool's index and add items embedded since; build it when missing."""
    from workers.inference.neighbours import VectorIndex

    ids, matrix = _item_vectors(pool, model_spec)
    path = _index_path(pool, model_spec)
    index = VectorIndex.load(path)
    if index is None and ids:
        index = VectorIndex.for_size(matrix.shape[1], len(ids))
    if index is not None and ids and index.add(ids, matrix):
        index.save(path)
    return index


def item_neighbours(*, item: Item, model_spec: str, k: int = 10) -> list[Neighbour]:
    index = pool_index_refresh(pool=item.pool, model_spec=model_spec)
    ids, matrix = _item_vectors(item.pool, model_spec, [item.pk])
    if index is None or not ids:
        return []
    sims, found = index.search(matrix, k + 1)
    return [Neighbour(int(i), float(s)) for s, i in zip(sims[0], found[0]) if i >= 0 and int(i) != item.pk][:k]


def near_duplicates_refresh(*, pool: Pool, model_spec: str, threshold: float = NEAR_DUPLICATE_COSINE) -> int:
    """Set Item.near_dup_group for the pool; returns the number of items in a group."""
    from workers.inference.neighbours import near_duplicate_groups

    index = pool_index_refresh(pool=pool, model_spec=model_spec)
    ids, matrix = _item_vectors(pool, model_spec)
    if index is None or not ids:
        return 0
    groups = near_duplicate_groups(ids, matrix, threshold, index)
    with transaction.atomic():
        Item.objects.filter(pool=pool).exclude(pk__in=list(groups)).update(near_dup_group=None)
        by_group: dict[int, list[int]] = {}
        for item_id, group in groups.items():
            by_group.setdefault(group, []).append(item_id)
        for group, members in by_group.items():
            Item.objects.filter(pk__in=members).update(near_dup_group=group)
    return len(groups)


def contamination_check(*, pool: Pool, against: Pool, model_spec: str,
                        threshold: float = NEAR_DUPLICATE_COSINE) -> list[tuple[int, int, float]]:
    """Items of `pool` whose image has a near-duplicate in `against` (e.g. an eval set): (item, match, cosine)."""
    index = pool_index_refresh(pool=against, model_spec=model_spec)
    ids, matrix = _item_vectors(pool, model_spec)
    if index is None or not ids:
        return []
    sims, found = index.search(matrix, 1)
    return [(item_id, int(found[row][0]), float(sims[row][0])) for row, item_id in enumerate(ids)
            if found[row][0] >= 0 and sims[row][0] >= threshold]
