from lookfirst.accounts.roles import Role, role_of


def roles(request) -> dict:
    role = role_of(getattr(request, "user", None))
    return {"role": role.name.lower(), "can_curate": role >= Role.CURATOR, "is_admin": role >= Role.ADMIN}
