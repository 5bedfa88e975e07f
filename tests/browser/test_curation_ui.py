from __future__ import annotations

import re

import pytest

from lookfirst.curation.models import AuditEntry
from lookfirst.pools.models import Item
from tests.browser.conftest import login, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_log_in_filter_page_and_open_an_item(live_server, new_page, curator, shapes_pool):
    page = new_page()
    page.goto(f"{live_server.url}/pools/shapes/items/")
    assert "/accounts/login/" in page.url  # log-in required
    shot(page, "01-login")
    login(page, live_server, curator.username)
    shot(page, "02-pools")
    page.click("text=shapes")
    page.wait_for_selector("#scoring-runs")
    shot(page, "03-dashboard")
    page.click("text=Browse items")
    page.check("input[name=bucket][value=medium]")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"bucket=medium"))
    medium = Item.objects.filter(pool=shapes_pool, bucket="medium").count()
    cards = page.locator("article.item-card")
    assert cards.count() == min(medium, 50)
    assert set(page.locator("article.item-card .bucket").all_text_contents()) == {"medium"}
    shot(page, "04-browser-medium")
    page.goto(f"{live_server.url}/pools/shapes/items/")
    page.click("#next-page")
    page.wait_for_url(re.compile(r"after="))
    assert page.locator("article.item-card").count() == Item.objects.filter(pool=shapes_pool).count() - 50
    first_id = int(page.locator("article.item-card").first.get_attribute("data-item"))
    assert first_id == list(Item.objects.filter(pool=shapes_pool).order_by("id").values_list("id", flat=True))[50]
    page.locator("article.item-card a.thumbwrap").first.click()
    page.wait_for_selector("text=Sampled answers")
    assert page.locator("h1").inner_text().startswith(f"Item {first_id}")
    shot(page, "05-item-detail")


def test_review_by_keyboard_is_audited_and_undoable(live_server, new_page, curator, shapes_pool):
    page = new_page()
    login(page, live_server, curator.username)
    page.goto(f"{live_server.url}/pools/shapes/review/?bucket=medium")
    item_id = int(page.locator("input[name=item]").get_attribute("value"))
    shot(page, "06-review")
    page.keyboard.press("3")  # Hard
    page.wait_for_function(f"document.querySelector('input[name=item]') === null || "
                           f"document.querySelector('input[name=item]').value !== '{item_id}'")
    item = Item.objects.get(pk=item_id)
    assert (item.bucket, item.bucket_source, item.reviewed) == ("hard", "curator", True)
    entry = AuditEntry.objects.get(item=item)
    assert (entry.user, entry.source, entry.before["bucket"], entry.after["bucket"]) == (curator, "review", "medium", "hard")
    page.goto(f"{live_server.url}/items/{item_id}/")
    history = page.locator("#history").inner_text()
    assert "review: hard" in history and curator.username in history
    shot(page, "07-history")
    page.goto(f"{live_server.url}/pools/shapes/review/?bucket=medium")
    page.keyboard.press("u")
    page.wait_for_selector(".flash")
    item.refresh_from_db()
    assert (item.bucket, item.reviewed) == ("medium", False)


def test_bulk_move_a_selection(live_server, new_page, curator, shapes_pool):
    page = new_page()
    login(page, live_server, curator.username)
    page.goto(f"{live_server.url}/pools/shapes/items/?bucket=hard")
    ids = [int(x) for x in page.locator("article.item-card").evaluate_all("els => els.slice(0, 3).map(e => e.dataset.item)")]
    for item_id in ids:
        page.check(f"input[name=item][value='{item_id}']")
    assert page.locator("#selected-count").inner_text() == "3"
    page.select_option("select[name=bucket][aria-label='bulk bucket']", "easy")
    shot(page, "08-bulk-selection")
    page.click("#bulk-apply")
    page.wait_for_selector("text=Changed 3 of 3 items.")
    assert list(Item.objects.filter(pk__in=ids).values_list("bucket", flat=True)) == ["easy"] * 3
    assert AuditEntry.objects.filter(item_id__in=ids, source="bulk").count() == 3


def test_two_curators_conflict_on_the_same_item(live_server, new_page, curator, shapes_pool):
    from tests.factories import user_with_role

    other = user_with_role("curator")
    item = Item.objects.filter(pool=shapes_pool).order_by("id").first()
    first, second = new_page(), new_page()
    login(first, live_server, curator.username)
    login(second, live_server, other.username)
    for page in (first, second):
        page.goto(f"{live_server.url}/items/{item.pk}/")
    first.fill("input[name=answer]", "first answer")
    first.click("form.edit button[value=edit]")
    first.wait_for_selector("text=Saved.")
    second.fill("input[name=answer]", "second answer")
    second.click("form.edit button[value=edit]")
    second.wait_for_selector("#conflict")
    assert curator.username in second.locator("#conflict").inner_text()
    assert "first answer" in second.content()
    shot(second, "09-conflict")
    item.refresh_from_db()
    assert (item.answer, item.version) == ("first answer", 2)


def test_curator_is_refused_the_admin_pages(live_server, new_page, curator, admin_user, shapes_pool):
    page = new_page()
    login(page, live_server, curator.username)
    for path in ("/admin/", "/settings/"):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 403, path
    admin = new_page()
    login(admin, live_server, admin_user.username)
    assert admin.goto(f"{live_server.url}/settings/").status == 200
    assert "pebr" in admin.content()
    shot(admin, "10-settings")
