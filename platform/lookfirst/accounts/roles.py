"""Roles are Django groups. Admin includes curator includes viewer; superusers are admins."""
from __future__ import annotations

from enum import IntEnum

from django.core.exceptions import PermissionDenied


class Role(IntEnum):
    NONE = 0
    VIEWER = 1
    CURATOR = 2
    ADMIN = 3


GROUPS = {"viewer": Role.VIEWER, "curator": Role.CURATOR, "admin": Role.ADMIN}


def role_of(user) -> Role:
    if user is None or not user.is_authenticated or not user.is_active:
        return Role.NONE
    if user.is_superuser:
        return Role.ADMIN
    names = getattr(user, "_lookfirst_groups", None)
    if names is None:
        names = set(user.groups.values_list("name", flat=True))
        user._lookfirst_groups = names
    return max((GROUPS[n] for n in names if n in GROUPS), default=Role.NONE)


def check_role(user, needed: Role) -> None:
    """Raise PermissionDenied unless `user` holds at least `needed`. Services call this first."""
    if role_of(user) < needed:
        raise PermissionDenied(f"this needs the {needed.name.lower()} role")
