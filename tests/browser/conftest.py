"""Headless Chromium (Debian's /usr/bin/chromium, never a downloaded browser) driving a live server."""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]

# Playwright's sync API runs an event loop in this thread; the ORM calls in test bodies are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser):
    contexts = []

    def make():
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        return page

    yield make
    for context in contexts:
        context.close()


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page, live_server, username: str, password: str = "correct-horse-battery") -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


@pytest.fixture
def shapes_pool(tmp_path):
    """A real shapes-world pool with scores spread over the buckets, as a scoring run would leave it."""
    from lookfirst.ingest import services
    from lookfirst.pools.models import Item
    from lookfirst.scoring import policies
    from workers.shapes import write_pool

    path = write_pool(tmp_path / "shapes", n=80, seed=3)
    run = services.ingest_path(user=None, pool_name="shapes", path=path)
    rng = random.Random(5)
    rules = policies.BUILTIN_POLICIES["pebr"][1]
    for item in Item.objects.filter(pool=run.pool).order_by("id"):
        k = rng.choice([0, 0, 3, 5, 7, 8, 8, 2])
        verdict = policies.verdict(rules, k, 8, 8)
        Item.objects.filter(pk=item.pk).update(
            n_correct=k, n_samples=8, pass_rate=k / 8, bucket=verdict.bucket, bucket_source="scored",
            bucket_policy="pebr", bucket_confidence=verdict.confidence, wilson_low=verdict.wilson_low,
            wilson_high=verdict.wilson_high, clip_sim=round(rng.uniform(0.05, 0.6), 3),
            clip_pct=round(rng.random(), 3))
    return run.pool
