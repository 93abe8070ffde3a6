"""Property-based run over the served OpenAPI schema (schemathesis against the live server): no 5xx,
and every answer has a status, content type and body the schema documents.

Requests carry no token, so state-changing endpoints answer 401 and the shared catalog stays
as it is; the number of examples per operation is bounded to keep the run short.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from api_live import LiveApi, shared_live_api
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = 6  # per operation and generation mode; 16 operations: ~200 requests, well under a minute


@pytest.fixture(scope="module")
def live_api(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> LiveApi:
    return shared_live_api(shared_media, tmp_path_factory)


@pytest.fixture(scope="module")
def api_schema(live_api: LiveApi) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(live_api.url("/openapi.json"))


def test_no_server_errors_and_answers_match_the_schema(
    api_schema: schemathesis.BaseSchema, live_api: LiveApi
) -> None:
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    failures: list[str] = []
    statuses: Counter[tuple[str, int]] = Counter()
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: schemathesis.Case) -> None:
                response = case.call(base_url=live_api.url(""), timeout=60)
                statuses[(case.operation.label, response.status_code)] += 1
                case.validate_response(response, checks=checks)

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to get wrong (e.g. GET /health)
            except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
    answered = {label for label, status in statuses if status < 300}
    assert {"POST /search", "POST /export", "GET /videos", "GET /health"} <= answered, sorted(
        statuses.items()
    )
    assert any(status == 401 for _, status in statuses), "state-changing endpoints were tried without a token"
