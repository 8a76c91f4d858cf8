"""schemathesis against the app's own OpenAPI document, in-process, over the seeded registers.

Every generated request (valid and invalid data alike) is sent as each role (supervisor, agency admin,
officer, enterprise) and without a session. Each answer must not be a server error, must have a status
code the document lists for the route, and must match that answer's schema and content type.

Bounded and reproducible: a few examples per operation, derandomized, no deadline, one test per
operation. Left out: the server-sent events stream (it never ends) and sign-out (it would end the test's
own sessions; the browser test signs out). MQTT and the scheduler are off in this app.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from server import db as dbmod
from server.app import create_app
from server.console.auth import sign_in
from server.settings import ServerSettings
from server.ingest.store import DeviceKeys
from server.ingest.batch import store_batch
from server.storage.engine import Tx
from tests.server.conftest import password, seed
from tests.server.test_evidence import DEVICE_KEY, events

#: Generated examples per operation and generation mode (each sent five times: per role and without a session).
MAX_EXAMPLES = 5
#: One user of each role, and no session at all.
USERS = ("sup", "admin-SAMR", "OFF-SAMR-1", "ent-plain", None)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
#: Routes that never end, or would end the test's own sessions.
EXCLUDED_PATHS = ("/api/v1/stream", "/api/v1/auth/logout")


@pytest.fixture(scope="module")
def app_and_tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, str]]]:
    """The app over the seeded registers and a few logged records, and a session token per user."""
    path: Path = tmp_path_factory.mktemp("schemathesis") / "server.db"
    dbmod.migrate(path)
    con = dbmod.connect(path)
    try:
        seed(con)
        con.execute("INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES ('BR-1', 'M', 'body_recorder', 'SAMR', ?, 0)", (DEVICE_KEY.public_hex,))
        store_batch(con, events(3), DeviceKeys(con))
        _seed_a_disclosed_case(Tx(con))
        tokens = {}
        for user in USERS:
            if user is not None:
                signed = sign_in(Tx(con), user, password(user))
                assert signed is not None, user
                tokens[user] = signed[0]
    finally:
        con.close()
    yield create_app(ServerSettings(db_path=path, mqtt_enabled=False, jobs_enabled=False)), tokens


def _seed_a_disclosed_case(tx: Tx) -> None:
    """A case of PLAIN with a published decision and an individual party, so that the cases' lists, the public
    disclosure and the enterprise's view answer with data that their schemas must describe."""
    import time

    from server.cases import decide, workflow
    from server.cases.forms import CaseIn, DecisionIn, PartyIn
    from server.cases.policy import CasesPolicy
    from server.console.auth import Principal
    from tests.server.conftest import PLAIN

    now = int(time.time() * 1000)
    officer = Principal(username="OFF-SAMR-1", role="officer", agency_id="SAMR", officer_id="OFF-SAMR-1")
    body = CaseIn(kind="penalty", title="销售过期食品", field="food", credit_code=PLAIN, officer_ids=["OFF-SAMR-1", "OFF-SAMR-2"],
                  parties=[PartyIn(kind="individual", name="张三", id_no="110101199003071234")])  # fmt: skip
    case_id = workflow.open_case(tx, body, officer, now, CasesPolicy()).case_id
    workflow.transition(tx, case_id, "investigating", "", officer, now)
    decide.decide(tx, case_id, DecisionIn(summary="警告", measures=["warning"]), officer, now, CasesPolicy())
    decide.publish(tx, case_id, officer, now)


def test_the_routes_of_cases_codes_and_bundles_are_fuzzed() -> None:
    """The routes of issue 15, 16 and 17 are in the document, so the test above sends them every role's requests."""
    paths = set(schema.raw_schema["paths"])
    for path in (
        "/api/v1/cases", "/api/v1/cases/{case_id}", "/api/v1/cases/{case_id}/transitions", "/api/v1/cases/{case_id}/decision",
        "/api/v1/cases/{case_id}/reviews/{review_id}/outcome", "/api/v1/cases/{case_id}/transfers/{transfer_id}/answer", "/api/v1/cases/disclosed",
        "/api/v1/cases/reviewers", "/api/v1/inspections/{inspection_id}/badge", "/api/v1/inspections/mine", "/api/v1/exception-bases/choices",
        "/api/v1/alerts/{alert_id}/assign", "/api/v1/evidence/bundles/case/{case_id}", "/api/v1/evidence/bundles/device/{device_id}",
        "/api/v1/evidence/tree-head",
    ):  # fmt: skip
        assert path in paths, path


def _document() -> dict[str, Any]:
    """The app's OpenAPI document, read at collection from a throw-away app (the tests run against another)."""
    with tempfile.TemporaryDirectory() as tmp:
        return create_app(ServerSettings(db_path=Path(tmp) / "schema.db", mqtt_enabled=False, jobs_enabled=False)).openapi_schema.to_schema()


schema = schemathesis.openapi.from_dict(_document())
for _excluded in EXCLUDED_PATHS:
    schema = schema.exclude(path=_excluded)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_the_api_answers_as_documented_for_every_role(case: Any, app_and_tokens: tuple[Any, dict[str, str]]) -> None:
    """Examples, boundary values (schemathesis' coverage phase) and fuzzed data, valid and invalid, as every
    role and without a session: no 5xx, only documented answers, each as documented."""
    app, tokens = app_and_tokens
    for user in USERS:
        headers = {} if user is None else {"Authorization": f"Bearer {tokens[user]}"}
        case.call_and_validate(app=app, headers=headers, checks=CHECKS)


def test_the_document_lists_the_answers_of_sessions_ids_and_bodies() -> None:
    """401 and 403 wherever a session is needed, 404 with path ids, 400 and 413 with a body (before: none of them)."""
    paths = schema.raw_schema["paths"]
    answers = {(m.upper(), p): set(op["responses"]) for p, ops in paths.items() for m, op in ops.items()}
    assert {"200", "400", "401", "403", "404", "409", "413"} <= answers[("POST", "/api/v1/enterprises/{credit_code}/qr/revoke")]
    assert {"200", "400", "401", "403", "404"} <= answers[("GET", "/api/v1/inspections/{inspection_id}")]
    assert {"200", "401", "403"} <= answers[("GET", "/api/v1/overview")]
    assert answers[("GET", "/api/v1/evidence/tree-head")] == {"200", "400", "404"}  # public; a past head by ?size=N may not exist
    assert {"200", "400", "401", "403", "404", "413"} <= answers[("GET", "/api/v1/evidence/bundles/enterprise/{credit_code}")]
    for (method, path), codes in answers.items():
        if "{" in path:
            assert "404" in codes, (method, path)
        if "requestBody" in paths[path][method.lower()]:
            assert {"400", "413"} <= codes, (method, path)
