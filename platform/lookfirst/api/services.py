from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.utils import timezone

from lookfirst.api.models import ApiToken

TOKEN_PREFIX = "lf_"
LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one write per token per minute


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_token_create(*, user, name: str = "") -> tuple[ApiToken, str]:
    """Create a token for `user`; returns (record, raw token). The raw token is not stored anywhere."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=raw[:10], token_hash=_hash(raw))
    return token, raw


def api_token_authenticate(*, raw: str):
    """The active user holding `raw`, or None."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    token = ApiToken.objects.select_related("user").filter(token_hash=_hash(raw)).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def bearer_user(request):
    """The user of the request's `Authorization: Bearer <token>` header, or None (cached on the request)."""
    if not hasattr(request, "_api_token_user"):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, raw = header.partition(" ")
        request._api_token_user = (api_token_authenticate(raw=raw.strip())
                                   if scheme.lower() == "bearer" and raw.strip() else None)
    return request._api_token_user
