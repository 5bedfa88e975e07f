from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError
from django.http import QueryDict
from tqdm import tqdm

from lookfirst.curation.selectors import FilterError, ItemFilter
from lookfirst.labelstudio import services
from lookfirst.pools.models import Pool


class Command(BaseCommand):
    help = "Label Studio: connect, test, push a selection of a pool, pull annotations back."

    def add_arguments(self, parser):
        parser.add_argument("--as", dest="as_user", default="",
                            help="act as this LookFirst user (default: the first admin); it is recorded in the audit")
        sub = parser.add_subparsers(dest="action", required=True)
        connect = sub.add_parser("connect", help="store the server URL and API token")
        connect.add_argument("--url", required=True)
        connect.add_argument("--token", required=True)
        connect.add_argument("--lookfirst-url", default="http://127.0.0.1:8000",
                             help="how annotators' browsers reach this LookFirst server (for image links)")
        test = sub.add_parser("test", help="check the stored connection: server version and user")
        test.add_argument("--json", action="store_true")
        push = sub.add_parser("push", help="push a selection of a pool to a project (created if missing)")
        push.add_argument("pool")
        push.add_argument("--project", required=True)
        push.add_argument("--filter", default="",
                          help='item filter as URL parameters, e.g. "bucket=medium&conf_max=0.6"')
        push.add_argument("--items", default="", help="comma-separated item ids (instead of --filter)")
        push.add_argument("--json", action="store_true")
        pull = sub.add_parser("pull", help="apply new annotations of a project; report conflicts")
        pull.add_argument("--project", required=True)
        pull.add_argument("--json", action="store_true")

    def handle(self, *args, action, as_user, **o):
        user = _acting_user(as_user)
        try:
            getattr(self, f"_{action}")(user=user, **o)
        except (services.LabelStudioError, FilterError, PermissionDenied) as exc:
            raise CommandError(str(exc)) from None

    def _connect(self, *, user, url, token, lookfirst_url, **_):
        connection = services.labelstudio_connection_save(user=user, url=url, token=token, lookfirst_url=lookfirst_url)
        report = services.labelstudio_connection_test(user=user)
        self.stdout.write(f"saved {connection.url} (token {connection.token_hint}); "
                          + (f"Label Studio {report.version}, user {report.user}" if report.ok else report.error))
        if not report.ok:
            raise CommandError(report.error)

    def _test(self, *, user, json: bool, **_):
        report = services.labelstudio_connection_test(user=user)
        if json:
            self.stdout.write(_dumps({"ok": report.ok, "url": report.url, "version": report.version,
                                      "user": report.user, "error": report.error}))
        elif report.ok:
            self.stdout.write(f"Label Studio {report.version} at {report.url}, user {report.user}")
        if not report.ok:
            raise CommandError(report.error)

    def _push(self, *, user, pool, project, filter, items, json: bool, **_):
        try:
            pool_obj = Pool.objects.get(name=pool)
        except Pool.DoesNotExist:
            raise CommandError(f"no pool named {pool!r}") from None
        try:
            item_ids = [int(x) for x in items.split(",") if x.strip()] if items else None
        except ValueError:
            raise CommandError("--items takes comma-separated item ids") from None
        flt = ItemFilter.from_params(QueryDict(filter))
        with tqdm(unit="task", desc=f"push {project}", disable=json) as bar:
            def progress(done: int, total: int) -> None:
                bar.total, bar.n = total, done
                bar.refresh()

            result = services.labelstudio_project_push(user=user, pool=pool_obj, project_name=project, flt=flt,
                                                       item_ids=item_ids, progress=progress)
        out = result.as_dict()
        self.stdout.write(_dumps(out) if json else
                          f"{out['project']}: {out['created']} tasks created, {out['updated']} updated ({out['url']})")

    def _pull(self, *, user, project, json: bool, **_):
        with tqdm(unit="annotation", desc=f"pull {project}", disable=json) as bar:
            def progress(done: int, total: int) -> None:
                bar.total, bar.n = total, done
                bar.refresh()

            out = services.labelstudio_project_pull(user=user, project_name=project, progress=progress).as_dict()
        if json:
            self.stdout.write(_dumps(out))
            return
        self.stdout.write(f"{out['project']}: {out['applied']} applied, {out['unchanged']} unchanged, "
                          f"{out['conflicts']} conflicts, {out['invalid']} invalid, {out['cancelled']} skipped, "
                          f"{out['already_pulled']} pulled before")
        for c in out["conflict_list"]:
            self.stdout.write(f"  conflict: item {c['item']} (pushed v{c['pushed_version']}, now "
                              f"v{c['item_version']}), annotation {c['annotation']} by {c['annotator']}: "
                              f"{', '.join(c['fields'])}")


def _acting_user(username: str):
    User = get_user_model()
    if username:
        try:
            return User.objects.get(username=username, is_active=True)
        except User.DoesNotExist:
            raise CommandError(f"no active user {username!r}") from None
    user = User.objects.filter(is_superuser=True, is_active=True).order_by("id").first()
    if user is None:
        raise CommandError("no admin user yet: run `python manage.py up` once, or pass --as USERNAME")
    return user


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
