from __future__ import annotations

import pytest
from django.http import QueryDict

from lookfirst.curation.selectors import FilterError, ItemFilter, items_page
from lookfirst.pools.models import Item
from tests.scoring.conftest import make_pool

pytestmark = pytest.mark.django_db


@pytest.fixture
def pool(tmp_path):
    rows = [(f"How many red things {i}?" if i % 3 == 0 else f"What colour {i}?", str(i)) for i in range(12)]
    pool, items = make_pool(tmp_path, "sel", rows)
    for i, item in enumerate(items):
        Item.objects.filter(pk=item.pk).update(
            bucket=("easy", "medium", "hard")[i % 3], pass_rate=None if i == 11 else i / 10,
            clip_sim=0.1 * (i % 4), reviewed=i % 2 == 0)
    return pool


def _all_pages(pool, flt, size):
    ids, cursor = [], None
    while True:
        page = items_page(pool=pool, flt=flt, after=cursor, size=size)
        ids += [i.source_row for i in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return ids


def test_keyset_pages_cover_everything_once_in_order(pool):
    assert _all_pages(pool, ItemFilter(), 5) == list(range(1, 13))
    # descending pass rate; the unscored item (NULL) sorts last as -1
    assert _all_pages(pool, ItemFilter(sort="-pass_rate"), 4) == [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 12]
    # ties on clip_sim are broken by id
    assert _all_pages(pool, ItemFilter(sort="clip_sim"), 3) == [1, 5, 9, 2, 6, 10, 3, 7, 11, 4, 8, 12]


def test_filters_combine(pool):
    flt = ItemFilter.from_params(QueryDict("bucket=easy,medium&pass_min=0.3&reviewed=yes&q=colour"))
    assert _all_pages(pool, flt, 50) == [5, 11]
    assert flt.as_params() == {"bucket": "easy,medium", "pass_min": "0.3", "reviewed": "yes", "q": "colour"}
    assert _all_pages(pool, ItemFilter.from_params({"q": "red", "clip_min": "0.2"}), 50) == [4, 7]


def test_bad_filter_values_name_the_field():
    with pytest.raises(FilterError, match="pass_min: expected a number"):
        ItemFilter.from_params({"pass_min": "lots"})
    with pytest.raises(FilterError, match="bucket: unknown value 'trivial'"):
        ItemFilter.from_params({"bucket": "trivial"})
    with pytest.raises(FilterError, match="sort: unknown"):
        ItemFilter.from_params({"sort": "random"})
