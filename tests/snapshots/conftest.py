from __future__ import annotations

import pytest

from lookfirst.pools.models import Item
from tests.scoring.conftest import make_pool

# (bucket, pass_rate, n_correct) per row of the standard pool; row 9 is pseudo-labelled, row 10 excluded
STATES = [
    ("easy", 1.0, 8), ("easy", 1.0, 8), ("easy", 1.0, 8), ("medium", 0.75, 6), ("medium", 0.25, 2),
    ("medium", 0.5, 4), ("medium", 0.875, 7), ("hard", 0.0, 0), ("unscored", None, None), ("medium", 0.625, 5),
    ("easy", 1.0, 8), ("medium", 0.375, 3),
]


def set_state(item: Item, bucket: str, pass_rate: float | None, n_correct: int | None, **extra) -> None:
    Item.objects.filter(pk=item.pk).update(
        bucket=bucket, pass_rate=pass_rate, n_correct=n_correct, n_samples=None if n_correct is None else 8,
        bucket_source="" if bucket == "unscored" else "scored", bucket_policy="" if bucket == "unscored" else "pebr",
        bucket_confidence=None if bucket == "unscored" else 0.5, clip_sim=0.3, clip_pct=0.5, **extra)


def curated_pool(tmp_path, name: str = "snap"):
    """12 items in every state an export meets; returns (pool, items in row order)."""
    rows = [(f"What is shown in picture {i}?", f"answer {i}") for i in range(len(STATES))]
    rows[9] = ("How many shapes are there?", None)
    pool, items = make_pool(tmp_path, name, rows)
    for i, (item, state) in enumerate(zip(items, STATES)):
        extra = {}
        if i == 9:
            extra = {"pseudo_answer": "4", "pseudo_agreement": 0.75}  # set_state marks it scored; fixed below
        if i == 10:
            extra = {"excluded": True}
        if i == 11:
            extra = {"tags": ["text-only"], "key_words": ["three", "shapes"]}
        set_state(item, *state, **extra)
    Item.objects.filter(pk=items[9].pk).update(bucket_source="pseudo_label", bucket_confidence=0.75)
    return pool, [Item.objects.get(pk=i.pk) for i in items]


@pytest.fixture(autouse=True)
def _export_root(settings, tmp_path):
    settings.LOOKFIRST_EXPORT_ROOT = tmp_path / "exports"


@pytest.fixture
def pool_items(db, tmp_path):
    return curated_pool(tmp_path)
