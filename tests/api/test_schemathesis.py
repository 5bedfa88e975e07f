"""Property-based run of every operation in the OpenAPI schema, as an admin: no input gives a 5xx.

Runs the operations' Hypothesis strategies directly: schemathesis' lazy pytest fixture loader touches a
pytest-internal attribute that pytest 9 no longer has.
"""
from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from lookfirst.api.services import api_token_create

pytestmark = pytest.mark.django_db
EXAMPLES = 10  # per operation and strategy


@pytest.fixture
def admin_headers(admin_user) -> dict[str, str]:
    _, raw = api_token_create(user=admin_user)
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def api_schema(world, admin_headers):
    # Like Django's test client: requests must not close the test's connection (and its transaction).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/openapi.json", get_wsgi_application(), headers=admin_headers)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def real_references(world) -> tuple[dict, dict]:
    """Path parameters and body fields naming objects that exist, so generated cases reach the services."""
    path = {"item_id": world["items"][0].pk, "run_id": world["run"].pk, "snapshot_id": world["first"].pk,
            "a": world["first"].pk, "b": world["second"].pk, "export_id": world["export"].pk}
    body = {"pool": "apipool", "snapshot": world["first"].pk, "parent": world["second"].pk,
            "model_spec": "openai:http://127.0.0.1:9/v1#m", "policy": "pebr"}
    return path, body


def strategies(operation, world):
    path, body = real_references(world)
    fixed = {name: value for name, value in path.items() if f"{{{name}}}" in operation.path}
    if "{name}" in operation.path:
        fixed["name"] = "perception.jsonl" if "files" in operation.path else "apipool"

    def with_real_body(case):
        if isinstance(case.body, dict):
            case.body.update({key: value for key, value in body.items()
                              if key in case.body or key in ("pool", "snapshot")})
        return case

    yield operation.as_strategy()  # random values: mostly 404s and 400s
    yield operation.as_strategy(path_parameters=fixed).map(with_real_body)  # real objects, random options
    yield operation.as_strategy(GenerationMode.NEGATIVE)  # inputs that break the schema: 4xx, never 5xx


def test_no_input_makes_the_api_fail(api_schema, admin_headers, world):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 16
    errors: list[str] = []
    statuses: Counter = Counter()
    for operation in operations:
        for strategy in strategies(operation, world):
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def check(case):
                response = case.call(headers=admin_headers)
                statuses[response.status_code // 100] += 1
                if response.status_code >= 500:
                    errors.append(f"{case.method} {case.formatted_path} {case.query} {case.body!r} -> "
                                  f"{response.status_code} {response.text[:300]}")
                assert response.status_code < 500

            try:
                check()
            except AssertionError:
                pass  # recorded above with its input; go on with the other operations
    assert errors == []
    assert statuses[2] > 100 and statuses[4] > 100  # both accepted and refused inputs were exercised
