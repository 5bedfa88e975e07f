from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from lookfirst.labelstudio.models import LabelStudioConnection, LabelStudioTask
from lookfirst.pools.models import Item

pytestmark = [pytest.mark.labelstudio, pytest.mark.django_db(transaction=True)]


def _run(*args) -> str:
    out = io.StringIO()
    call_command("labelstudio", *args, stdout=out)
    return out.getvalue()


def test_connect_test_push_pull_from_the_command_line(labelstudio_server, live_server, pool_items, admin_user):
    pool, items = pool_items
    with pytest.raises(CommandError, match="refused the API token"):
        _run("connect", "--url", labelstudio_server.url, "--token", "0" * 40, "--lookfirst-url", live_server.url)
    out = _run("connect", "--url", labelstudio_server.url, "--token", labelstudio_server.token,
               "--lookfirst-url", live_server.url)
    assert out.strip() == (f"saved {labelstudio_server.url} (token …{labelstudio_server.token[-4:]}); "
                           f"Label Studio 1.23.2, user {labelstudio_server.username}")
    assert LabelStudioConnection.objects.get().token == labelstudio_server.token
    assert json.loads(_run("test", "--json")) == {"ok": True, "url": labelstudio_server.url, "version": "1.23.2",
                                                  "user": labelstudio_server.username, "error": ""}

    pushed = json.loads(_run("push", "lspool", "--filter", "bucket=medium&conf_max=0.6", "--project", "cli",
                             "--json"))
    project_id = pushed.pop("ls_project_id")
    assert pushed == {"project": "cli", "url": f"{labelstudio_server.url}/projects/{project_id}/", "created": 2,
                      "updated": 0}
    task = LabelStudioTask.objects.get(item=items[0])
    labelstudio_server.client().annotations.create(id=task.ls_task_id, result=[
        {"from_name": "bucket", "to_name": "question", "type": "choices", "value": {"choices": ["easy"]}}])
    pulled = json.loads(_run("pull", "--project", "cli", "--json"))
    assert {k: pulled[k] for k in ("project", "applied", "conflicts", "unchanged", "already_pulled")} == {
        "project": "cli", "applied": 1, "conflicts": 0, "unchanged": 0, "already_pulled": 0}
    assert pulled["changes"][0]["fields"] == {"bucket": ["medium", "easy"]}
    assert Item.objects.get(pk=items[0].pk).bucket == "easy"
    assert _run("pull", "--project", "cli").startswith("cli: 0 applied, 0 unchanged, 0 conflicts")

    with pytest.raises(CommandError, match="filter|bucket: unknown value"):
        _run("push", "lspool", "--filter", "bucket=trivial", "--project", "cli")
    with pytest.raises(CommandError, match="no pool named 'missing'"):
        _run("push", "missing", "--project", "cli")
    with pytest.raises(CommandError, match="no active user 'ghost'"):
        _run("--as", "ghost", "test")
