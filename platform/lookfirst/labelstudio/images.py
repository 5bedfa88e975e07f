"""Time-limited signed image links for Label Studio: the link is the credential (no session needed)."""
from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALT = "lookfirst.labelstudio.image"
DEFAULT_MAX_AGE = 30 * 24 * 3600  # a push refreshes every link, so a month covers a labeling round


def image_url_max_age() -> int:
    return getattr(settings, "LOOKFIRST_LABELSTUDIO_IMAGE_MAX_AGE", DEFAULT_MAX_AGE)


def image_token_sign(*, sha256: str) -> str:
    return signing.dumps(sha256, salt=SALT)


def image_token_read(*, token: str) -> str:
    """The image sha256 a token names; raises signing.BadSignature (or its SignatureExpired)."""
    return signing.loads(token, salt=SALT, max_age=image_url_max_age())


def image_url(*, base_url: str, sha256: str) -> str:
    path = reverse("labelstudio:image", kwargs={"token": image_token_sign(sha256=sha256)})
    return base_url.rstrip("/") + path
