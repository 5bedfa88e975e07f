from __future__ import annotations

import itertools

from lookfirst.accounts.services import user_create

_counter = itertools.count(1)


def user_with_role(role: str, password: str = "correct-horse-battery"):
    user, _ = user_create(username=f"{role}{next(_counter)}", role=role, password=password)
    return user
