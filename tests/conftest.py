from __future__ import annotations

import pytest

from tests.factories import user_with_role


@pytest.fixture
def viewer(db):
    return user_with_role("viewer")


@pytest.fixture
def curator(db):
    return user_with_role("curator")


@pytest.fixture
def admin_user(db):
    return user_with_role("admin")


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    """Each test writes images into its own media folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.UPLOAD_ROOT = tmp_path / "uploads"
