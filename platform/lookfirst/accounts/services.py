from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from lookfirst.accounts.roles import GROUPS


def roles_ensure() -> None:
    for name in GROUPS:
        Group.objects.get_or_create(name=name)


@transaction.atomic
def user_create(*, username: str, role: str, password: str | None = None, email: str = ""):
    """Create a user holding one role; returns (user, password). Admins are also Django superusers."""
    if role not in GROUPS:
        raise ValueError(f"unknown role {role!r}; known: {', '.join(GROUPS)}")
    roles_ensure()
    password = password or secrets.token_urlsafe(12)
    User = get_user_model()
    user = User.objects.create_user(username=username, email=email, password=password)
    if role == "admin":
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    user.groups.add(Group.objects.get(name=role))
    return user, password


def admin_ensure(*, credentials_file) -> tuple[str, str | None]:
    """Make sure a first admin exists; return (username, password if we know it).

    The generated password is written once to `credentials_file` (mode 0600) under LOOKFIRST_HOME, so
    `up` can print the log-in every time without the password ever living in the repository.
    """
    import json
    import os
    from pathlib import Path

    path = Path(credentials_file)
    User = get_user_model()
    if path.exists():
        saved = json.loads(path.read_text())
        if User.objects.filter(username=saved["username"]).exists():
            return saved["username"], saved["password"]
    existing = User.objects.filter(is_superuser=True).order_by("id").first()
    if existing is not None:
        return existing.username, None
    _, password = user_create(username="admin", role="admin")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"username": "admin", "password": password}))
    os.chmod(path, 0o600)
    return "admin", password
