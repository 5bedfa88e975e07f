from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image as PILImage

from lookfirst.ingest import services as ingest
from lookfirst.pools.models import Item
from lookfirst.scoring import services, similarity
from lookfirst.scoring.models import ClipEmbedding, ItemScore
from tests.openai_stub import OpenAIStub
from tests.scoring.test_scoring_service import LAYOUT, run_inline

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def clip_spec(tmp_path_factory):
    from workers.models.tiny import tiny_clip

    return "local-dir:" + str(tiny_clip(tmp_path_factory.mktemp("clip")))


def _pool(tmp_path, name, colours, questions, source="a.jsonl"):
    folder = tmp_path / name
    folder.mkdir()
    rows = []
    for i, (colour, question) in enumerate(zip(colours, questions)):
        buffer = io.BytesIO()
        PILImage.new("RGB", (40, 40), colour).save(buffer, format="PNG")
        (folder / f"{i}.png").write_bytes(buffer.getvalue())
        rows.append({"problem": f"<image>{question}", "answer": "1", "images": [f"{i}.png"],
                     "description": f"a square of colour {colour}"})
    (folder / source).write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return ingest.ingest_path(user=None, pool_name=name, path=folder / source).pool


def test_clip_similarities_percentiles_and_near_duplicates(tmp_path, clip_spec):
    colours = [(255, 0, 0), (255, 0, 0), (0, 0, 255), (0, 200, 0)]  # items 0 and 1 share an image
    questions = ["Q0?", "Q1?", "Q2?", "Q3?"]
    pool = _pool(tmp_path, "clipped", colours, questions)
    with OpenAIStub({q: [LAYOUT.format("1")] for q in questions}) as stub:
        run = run_inline(services.scoring_run_create(user=None, pool=pool, model_spec=stub.spec(),
                                                     clip_spec=clip_spec, enqueue=False))

    from workers.inference.clip import get_clip

    encoder = get_clip(clip_spec)
    items = list(Item.objects.filter(pool=pool).order_by("source_row"))
    image = encoder.images([PILImage.new("RGB", (40, 40), colours[2])])[0]
    text = encoder.texts(["Q2?"])[0]
    score = ItemScore.objects.get(run=run, item=items[2])
    assert score.clip_question == pytest.approx(float(np.dot(image, text)), abs=1e-5)
    assert score.clip_description is not None and score.clip_answer is not None
    # percent_rank within the source: ranks 0, 1/3, 2/3, 1 over the four items (ties share a rank).
    sims = sorted((i.clip_sim, i.clip_pct) for i in items)
    assert [p for _, p in sims] == sorted(p for _, p in sims)
    assert sims[0][1] == 0.0 and sims[-1][1] == 1.0
    # Three distinct images embedded once each; four question texts + answer "1" + three descriptions.
    assert ClipEmbedding.objects.filter(model_key=clip_spec, kind="image").count() == 3
    assert (items[0].near_dup_group, items[1].near_dup_group) == (items[0].pk, items[0].pk)
    assert (items[2].near_dup_group, items[3].near_dup_group) == (None, None)


def test_more_like_this_and_contamination(tmp_path, clip_spec):
    colours = [(255, 0, 0), (250, 5, 0), (0, 0, 255)]
    train = _pool(tmp_path, "train", colours, ["A?", "B?", "C?"])
    evalset = _pool(tmp_path, "evalset", [(0, 0, 255)], ["Z?"])
    with OpenAIStub({}) as stub:
        for pool in (train, evalset):
            run_inline(services.scoring_run_create(user=None, pool=pool, model_spec=stub.spec(),
                                                   clip_spec=clip_spec, enqueue=False))
    items = list(Item.objects.filter(pool=train).order_by("source_row"))

    neighbours = similarity.item_neighbours(item=items[0], model_spec=clip_spec, k=2)

    assert [n.item_id for n in neighbours] == [items[1].pk, items[2].pk]  # near-red before blue
    assert neighbours[0].similarity > neighbours[1].similarity
    hits = similarity.contamination_check(pool=train, against=evalset, model_spec=clip_spec)
    eval_item = Item.objects.get(pool=evalset)
    assert [(a, b) for a, b, _ in hits] == [(items[2].pk, eval_item.pk)]
    assert hits[0][2] == pytest.approx(1.0, abs=1e-5)


def test_index_is_updated_incrementally(tmp_path, clip_spec):
    from workers.inference.neighbours import VectorIndex

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex.for_size(16, 50)
    assert index.add(list(range(30)), vectors[:30]) == 30
    path = tmp_path / "x.index"
    index.save(path)
    loaded = VectorIndex.load(path)
    assert loaded.add(list(range(50)), vectors) == 20  # only the new ones
    sims, ids = loaded.search(vectors[45:46], 1)
    assert ids[0][0] == 45 and sims[0][0] == pytest.approx(1.0, abs=1e-5)
    assert VectorIndex.for_size(16, 10**6, exact_limit=1000).kind == "hnsw"
