from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from lookfirst.api.services import api_token_create


class Command(BaseCommand):
    help = "Create a REST API token for a user; the token is printed once and never stored."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="create a token")
        create.add_argument("user", help="username")
        create.add_argument("--name", default="", help="what the token is for")

    def handle(self, *args, action, user, name, **options):
        try:
            owner = get_user_model().objects.get(username=user)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user named {user!r}") from None
        _, raw = api_token_create(user=owner, name=name)
        self.stdout.write(raw)
