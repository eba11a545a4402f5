"""Contract sections 1, 6 and 7 through the real HTTP API: bad requests, leniency, authentication, health,
the API document, and the commands' refusals. A rejected request must change nothing and call no Exchange."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from fastapi.exceptions import RequestValidationError
from sqlalchemy import func
from sqlmodel import Session, select

from api_shim import errors, fields
from downsync.db import get_engine
from downsync.embedded import free_port
from downsync.models import ApiToken, Event, Job, JobResult, Placement, Tenant
from ews_sim.testing import SimClient
from tests.support.stack import Stack

POSTBACK = "/api/salesforce/scheduler/postback"
JOBS = "/api/salesforce/scheduler/jobs"
SEED = Path("/work/shared/seeds/postback-api.txt")
MAILBOXES = ("alice@contoso.com", "bob@contoso.com", "carol@contoso.com", "dave@contoso.com")
SET = "3a5b0f6e-2c4d-4e8f-9a1b-7d6c5e4f3a2b"
MIB = 1024 * 1024


def event_id() -> str:
    return f"evt-{uuid.uuid4().hex[:12]}"


def create_body(eid: str | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": eid or event_id(),
        "organizerEmail": "alice@contoso.com",
        "body": "some text description",
        "subject": "some subject",
        "location": "meeting room 'Red'",
        "startTime": "2020-10-16T10:00:00Z",
        "endTime": "2020-10-16T11:00:00Z",
        "attendees": [
            {"email": "bob@contoso.com", "isRequired": "true"},
            {"email": "carol@contoso.com", "isRequired": "false"},
        ],
    }
    body.update(overrides)
    return body


def state(**overrides: Any) -> dict[str, Any]:
    body = create_body(**overrides)
    del body["id"]
    return body


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


def tagged(sim: SimClient, email: str, eid: str) -> list[dict[str, Any]]:
    return [i for i in sim.calendar(email) if i["extendedProperties"].get(f"{SET}:DownsyncEventId") == eid]


# --- what a rejected request must leave alone ----------------------------------------------------------


def store_counts(service: Stack) -> dict[str, int]:
    with Session(get_engine(service.database_url)) as session:
        counts = {
            model.__name__: session.exec(select(func.count()).select_from(model)).one()
            for model in (Event, Job, JobResult, Placement, Tenant, ApiToken)
        }
    counts["pending placements"] = service.pending_placements()
    return counts


def assert_error_shape(response: requests.Response, status: int, code: str, correlation_id: str | None = None) -> dict:
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"errorCode", "message", "details"}, payload
    assert payload["errorCode"] == code, payload
    assert isinstance(payload["message"], str) and payload["message"], payload
    assert isinstance(payload["details"], list), payload
    assert all(set(d) == {"field", "problem"} for d in payload["details"]), payload
    assert response.headers.get("X-Correlation-Id"), response.headers
    if correlation_id is not None:
        assert response.headers["X-Correlation-Id"] == correlation_id
    return payload


@pytest.fixture(autouse=True)
def http_layer_only(stack: Stack) -> None:
    if stack.dialect.name != "ews":
        pytest.skip("the HTTP layer does not depend on the calendar backend; the EWS stacks cover it")


@pytest.fixture
def untouched(service: Stack, sim: SimClient) -> Iterator[None]:
    """The test's requests are all refused: afterwards the store, the queue and Exchange are as before."""
    before = store_counts(service)
    yield
    assert store_counts(service) == before
    assert sim.log() == [], "a rejected request reached Exchange"
    for mailbox in MAILBOXES:
        assert sim.calendar(mailbox) == [], mailbox


def refused(
    service: Stack,
    method: str,
    body: bytes | str | Any,
    status: int,
    code: str,
    *phrases: str,
    fields: tuple[str, ...] = (),
    token: str | None = "default",
    headers: dict[str, str] | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Sends one postback that must be refused; checks status, code, shape, phrases and fields named."""
    correlation_id = f"corr-{uuid.uuid4().hex[:8]}"
    params = {"salesforceCorrelationId": correlation_id, **params}
    kwargs: dict[str, Any] = {"params": params, "headers": headers or {}}
    if isinstance(body, str | bytes):
        kwargs["data"] = body.encode() if isinstance(body, str) else body
    else:
        kwargs["json"] = body
    response = service.call(method, POSTBACK, token=token, **kwargs)
    payload = assert_error_shape(response, status, code, correlation_id)
    for phrase in phrases:
        assert phrase in payload["message"], payload
    named = {d["field"] for d in payload["details"]}
    for field in fields:
        assert field in named, payload
    assert "X-Job-Id" not in response.headers and "Location" not in response.headers
    return payload


# --- malformed JSON -------------------------------------------------------------------------------------


def seed_sample(after: str, until: str) -> str:
    text = SEED.read_text(encoding="utf-8")
    start = text.index(after) + len(after)
    return text[start : text.index(until, start)]


def first_trailing_comma(doc: str) -> tuple[int, int]:
    for number, line in enumerate(doc.split("\n"), start=1):
        if line.strip() == '"isRequired": "true",':
            return number, line.rindex(",") + 1
    raise AssertionError("the sample has no trailing comma")


CREATE_SAMPLE = ("POST {TENANT_URL}/api/salesforce/scheduler/postback\nBody:\n", "\nThe API Create response")
UPDATE_SAMPLE = ("PUT {TENANT_URL}/api/salesforce/scheduler/postback\nBody:\n", "\nThe API Update response")


@pytest.mark.parametrize(
    ("method", "sample"), [("POST", CREATE_SAMPLE), ("PUT", UPDATE_SAMPLE)], ids=["create", "update"]
)
def test_seed_samples_name_their_trailing_comma(
    service: Stack, untouched: None, method: str, sample: tuple[str, str]
) -> None:
    doc = seed_sample(*sample)
    assert doc.startswith("{\n") and doc.endswith("}")
    line, column = first_trailing_comma(doc)
    if method == "POST":
        assert (line, column) == (13, 21)  # the sample as printed: no indentation
    payload = refused(
        service,
        method,
        doc,
        400,
        "ErrorInvalidJson",
        "not valid JSON",
        "trailing comma",
        f"line {line} column {column}",
        fields=("body",),
    )
    assert "Expecting property name" in payload["message"]  # the parser's own cause


@pytest.mark.parametrize(
    ("body", "phrases"),
    [
        ("hello, Exchange", ("Expecting value", "line 1 column 1")),
        ('{"id": "x",\n  "organizerEmail" "a@contoso.com"}', ("Expecting ':' delimiter", "line 2 column 20")),
        ("", ("empty", "line 1 column 1")),
        (b'{"id": "\xff"}', ("utf-8",)),
    ],
    ids=["not-json", "missing-colon", "empty", "not-utf8"],
)
def test_bodies_that_are_not_json(service: Stack, untouched: None, body: str | bytes, phrases: tuple[str, ...]) -> None:
    refused(service, "POST", body, 400, "ErrorInvalidJson", "not valid JSON", *phrases, fields=("body",))


def test_empty_delete_body_is_not_json(service: Stack, untouched: None) -> None:
    refused(service, "DELETE", b"", 400, "ErrorInvalidJson", "empty")


# --- missing, mistyped and out-of-range fields -------------------------------------------------------------


REJECTED = [
    ("POST", without(create_body(), "id"), "id is required", "id"),
    ("POST", without(create_body(), "organizerEmail"), "organizerEmail is required", "organizerEmail"),
    ("POST", without(create_body(), "startTime"), "startTime is required", "startTime"),
    ("POST", without(create_body(), "endTime"), "endTime is required", "endTime"),
    ("POST", create_body(id="   "), "id", "id"),
    ("POST", create_body(attendees="bob@contoso.com"), "valid list", "attendees"),
    (
        "POST",
        create_body(attendees=[{"email": "bob@contoso.com", "isRequired": "maybe"}]),
        "true or false",
        "attendees[0].isRequired",
    ),
    ("POST", create_body(startTime=1602842400), "ISO 8601", "startTime"),
    ("POST", create_body(startTime="yesterday"), "ISO 8601", "startTime"),
    ("POST", create_body(endTime="2020-10-16T09:00:00Z"), "endTime must be after startTime", "endTime"),
    ("POST", create_body(endTime="2020-10-16T12:00:00+02:00"), "endTime must be after startTime", "endTime"),
    ("POST", create_body(organizerEmail=""), "organizerEmail must not be empty", "organizerEmail"),
    (
        "POST",
        create_body(attendees=[{"email": "bob@contoso.com"}, {"email": "not-an-email"}]),
        "'not-an-email' is not a valid e-mail address",
        "attendees[1].email",
    ),
    ("POST", create_body(attendees=[{"email": "a@b"}]), "'a@b' is not a valid e-mail address", "attendees[0].email"),
    ("POST", create_body(attendees=[{"isRequired": True}]), "attendees[0].email is required", "attendees[0].email"),
    ("POST", [create_body()], "object", "body"),
    ("PUT", {"id": "evt-1", "original": create_body()}, "new is required", "new"),
    ("PUT", {"new": state()}, "id is required, as original.id or a top-level id", "id"),
    ("PUT", {"original": without(create_body(), "id"), "new": state()}, "original.id or a top-level id", "id"),
    (
        "PUT",
        {"id": "evt-1", "new": state(endTime="2020-10-16T10:00:00Z")},
        "new.endTime must be after startTime",
        "new.endTime",
    ),
    ("PUT", {"id": "evt-1", "new": state(organizerEmail="not-an-email")}, "not a valid e-mail", "new.organizerEmail"),
    ("DELETE", {"organizerEmail": "alice@contoso.com", "attendees": ["bob@contoso.com"]}, "id is required", "id"),
    (
        "DELETE",
        {"id": "evt-1", "organizerEmail": "alice@contoso.com", "attendees": ["bob@contoso.com", "a@b"]},
        "'a@b' is not a valid e-mail address",
        "attendees[1]",
    ),
    ("DELETE", {"id": "evt-1", "attendees": []}, "organizerEmail is required", "organizerEmail"),
]


@pytest.mark.parametrize(
    ("method", "body", "phrase", "field"), REJECTED, ids=[f"{m}-{f}-{i}" for i, (m, _, _, f) in enumerate(REJECTED)]
)
def test_invalid_fields_are_named(
    service: Stack, untouched: None, method: str, body: Any, phrase: str, field: str
) -> None:
    payload = refused(service, method, body, 422, "ErrorInvalidRequest", phrase, fields=(field,))
    assert payload["message"].startswith(field) or field == "body"


def test_end_before_start_reads_as_the_contract_shows(service: Stack, untouched: None) -> None:
    payload = refused(service, "POST", create_body(endTime="2020-10-16T09:00:00Z"), 422, "ErrorInvalidRequest")
    assert payload["message"] == "endTime must be after startTime"
    assert payload["details"] == [{"field": "endTime", "problem": "must be after startTime"}]


def test_every_offending_field_is_listed(service: Stack, untouched: None) -> None:
    body = create_body(
        organizerEmail="",
        startTime="yesterday",
        attendees=[{"email": "bob@contoso.com", "isRequired": "maybe"}, {"email": "a@b"}],
    )
    payload = refused(service, "POST", body, 422, "ErrorInvalidRequest")
    assert {d["field"] for d in payload["details"]} == {
        "organizerEmail",
        "startTime",
        "attendees[0].isRequired",
        "attendees[1].email",
    }


@pytest.mark.parametrize(
    ("wait", "phrase"),
    [("-1", "greater than or equal to 0"), ("61", "less than or equal to 60"), ("soon", "valid number")],
)
def test_wait_out_of_range(service: Stack, untouched: None, wait: str, phrase: str) -> None:
    refused(service, "POST", create_body(), 422, "ErrorInvalidRequest", phrase, fields=("wait",), wait=wait)


def test_bodies_over_the_limit(service: Stack, untouched: None) -> None:
    big = json.dumps(create_body(padding="x" * MIB)).encode()
    assert len(big) > MIB
    refused(service, "POST", big, 413, "ErrorRequestTooLarge", str(MIB))

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    correlation_id = f"corr-{uuid.uuid4().hex[:8]}"
    response = service.call("POST", POSTBACK, data=chunks(), params={"salesforceCorrelationId": correlation_id})
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request.headers
    assert_error_shape(response, 413, "ErrorRequestTooLarge", correlation_id)


# --- accepted leniency ------------------------------------------------------------------------------------


def accepted(response: requests.Response, emails: tuple[str, ...] = MAILBOXES[:3]) -> None:
    assert response.status_code == 200, response.text
    assert response.json() == [{"email": e, "errorCode": "NoError"} for e in emails]


def test_body_without_content_type(service: Stack, sim: SimClient) -> None:
    eid = event_id()
    response = service.call("POST", POSTBACK, data=json.dumps(create_body(eid)).encode())
    assert "Content-Type" not in response.request.headers
    accepted(response)
    assert len(tagged(sim, "alice@contoso.com", eid)) == 1


def test_body_labelled_text_plain(service: Stack, sim: SimClient) -> None:
    eid = event_id()
    response = service.call(
        "POST", POSTBACK, data=json.dumps(create_body(eid)), headers={"Content-Type": "text/plain; charset=utf-8"}
    )
    accepted(response)
    assert len(tagged(sim, "bob@contoso.com", eid)) == 1


def test_big_chunked_body_under_the_limit(service: Stack, sim: SimClient) -> None:
    eid = event_id()
    body = json.dumps(create_body(eid, padding="x" * (MIB - 2048))).encode()
    assert len(body) <= MIB
    response = service.call("POST", POSTBACK, data=iter([body[: len(body) // 2], body[len(body) // 2 :]]))
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    accepted(response)


def test_booleans_and_unknown_fields(service: Stack, sim: SimClient) -> None:
    eid = event_id()
    body = create_body(
        eid,
        futureField={"nested": [1, 2]},
        isOnline="TRUE",
        attendees=[
            {"email": "bob@contoso.com", "isRequired": True, "extra": 1},
            {"email": "carol@contoso.com", "isRequired": False},
            {"email": "dave@contoso.com", "isRequired": "TRUE"},
            {"email": "Alice@Contoso.com", "isRequired": "False"},  # the organizer again: one appointment
        ],
    )
    response = service.postback("POST", body)
    accepted(response, ("alice@contoso.com", "bob@contoso.com", "carol@contoso.com", "dave@contoso.com"))
    for mailbox in MAILBOXES:
        assert len(tagged(sim, mailbox, eid)) == 1, mailbox


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2020-10-16T12:00:00+02:00", "2020-10-16T07:30:00-05:00", ("2020-10-16T10:00:00Z", "2020-10-16T12:30:00Z")),
        ("2020-10-16T10:00:00", "2020-10-16T11:00:00", ("2020-10-16T10:00:00Z", "2020-10-16T11:00:00Z")),
        (
            "2020-10-16T10:00:00.987Z",
            "2020-10-16T11:15:30.123456+00:00",
            ("2020-10-16T10:00:00Z", "2020-10-16T11:15:30Z"),
        ),
    ],
    ids=["offsets", "no-offset-is-utc", "fractional-seconds"],
)
def test_times_are_normalised(service: Stack, sim: SimClient, start: str, end: str, expected: tuple[str, str]) -> None:
    eid = event_id()
    accepted(service.postback("POST", create_body(eid, startTime=start, endTime=end)))
    for mailbox in MAILBOXES[:3]:
        [item] = tagged(sim, mailbox, eid)
        assert (item["start"], item["end"]) == expected


# --- authentication -----------------------------------------------------------------------------------------


def test_no_credentials(service: Stack, untouched: None) -> None:
    response = service.call("POST", POSTBACK, token=None, json=create_body())
    payload = assert_error_shape(response, 401, "ErrorUnauthorized")
    assert "Bearer" in payload["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    response = service.call("GET", f"{JOBS}/{uuid.uuid4().hex}", token=None)
    assert_error_shape(response, 401, "ErrorUnauthorized")
    assert "WWW-Authenticate" in response.headers


@pytest.mark.parametrize("authorization", ["Bearer dsk_not-a-token", "Bearer ", "Basic YWRtaW46YWRtaW4=", "dsk_x"])
def test_wrong_credentials(service: Stack, untouched: None, authorization: str) -> None:
    payload = refused(
        service, "POST", create_body(), 401, "ErrorUnauthorized", token=None, headers={"Authorization": authorization}
    )
    assert "token" in payload["message"]


def test_read_only_token_cannot_write(service: Stack, untouched: None) -> None:
    for method, body in (
        ("POST", create_body()),
        ("PUT", {"id": "evt-1", "new": state()}),
        ("DELETE", {"id": "evt-1", "organizerEmail": "alice@contoso.com"}),
    ):
        payload = refused(service, method, body, 403, "ErrorForbidden", "sync", token="read")
        assert payload["details"] == []


def test_jobs_are_the_tenants_own(service: Stack, sim: SimClient) -> None:
    response = service.postback("POST", create_body())
    accepted(response)
    job_id = response.headers["X-Job-Id"]
    assert service.job(job_id, token="read")["jobId"] == job_id  # reading needs no sync scope
    before, log = store_counts(service), len(sim.log())

    for method, path, token, status, code in (
        ("GET", f"{JOBS}/{job_id}", "other", 404, "ErrorJobNotFound"),
        ("POST", f"{JOBS}/{job_id}/retry", "other", 404, "ErrorJobNotFound"),
        ("POST", f"{JOBS}/{job_id}/retry", "read", 403, "ErrorForbidden"),
        ("GET", f"{JOBS}/{uuid.uuid4().hex}", "default", 404, "ErrorJobNotFound"),
        ("POST", f"{JOBS}/{uuid.uuid4().hex}/retry", "default", 404, "ErrorJobNotFound"),
    ):
        correlation_id = f"corr-{uuid.uuid4().hex[:8]}"
        answer = service.call(method, path, token=token, params={"salesforceCorrelationId": correlation_id})
        payload = assert_error_shape(answer, status, code, correlation_id)
        assert code != "ErrorJobNotFound" or path.split("/")[5] in payload["message"]
    listed = service.call("GET", JOBS, token="other")
    assert listed.status_code == 200 and job_id not in {j["jobId"] for j in listed.json()["jobs"]}
    assert store_counts(service) == before
    assert len(sim.log()) == log


def test_unknown_routes_keep_the_error_shape(service: Stack, untouched: None) -> None:
    assert_error_shape(
        service.call("GET", "/api/nothing-here", params={"salesforceCorrelationId": "c-1"}), 404, "ErrorNotFound", "c-1"
    )
    not_allowed = service.call("PATCH", POSTBACK, json=create_body())
    assert_error_shape(not_allowed, 405, "ErrorMethodNotAllowed")
    assert set(not_allowed.headers["Allow"].replace(" ", "").split(",")) == {"POST", "PUT", "DELETE"}
    payload = assert_error_shape(service.call("GET", JOBS, params={"state": "lost"}), 422, "ErrorInvalidRequest")
    assert payload["details"][0]["field"] == "state"
    payload = assert_error_shape(service.call("GET", JOBS, params={"cursor": "!!"}), 422, "ErrorInvalidRequest")
    assert payload["details"][0]["field"] == "cursor"


# --- health and the API document ----------------------------------------------------------------------------


def test_health_and_readiness(service: Stack) -> None:
    assert service.call("GET", "/healthz", token=None).json() == {"status": "ok"}
    ready = service.call("GET", "/readyz", token=None)
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
    docs = service.call("GET", "/docs", token=None)
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert "swagger" in docs.text.lower()


def test_docs_work_offline(service: Stack) -> None:
    for page, asset in (("/docs", "/static/docs/swagger-ui-bundle.js"), ("/redoc", "/static/docs/redoc.standalone.js")):
        html = service.call("GET", page, token=None).text
        assert asset in html and "cdn" not in html.lower() and "googleapis" not in html
        assert service.call("GET", asset, token=None).status_code == 200


def test_the_document_names_every_error_and_its_examples_hold(service: Stack) -> None:
    import jsonschema

    document = service.call("GET", "/openapi.json", token=None).json()
    assert {"HTTPBearer", "OAuth2", "HMAC", "HTTPBasic"} <= set(document["components"]["securitySchemes"])
    assert "HTTPValidationError" not in document["components"]["schemas"]
    post = document["paths"][POSTBACK]["post"]
    assert {"400", "401", "403", "413", "422", "429", "503"} <= set(post["responses"])
    for status in ("400", "401", "422", "429"):
        content = post["responses"][status]["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/Error"} and content["example"]["errorCode"]
    meeting = document["paths"]["/api/salesforce/scheduler/meeting"]
    assert meeting["post"]["responses"]["409"]["content"]["application/json"]["example"]["errorCode"] == (
        "MeetingAlreadyExists"
    )
    assert (
        meeting["get"]["responses"]["404"]["content"]["application/json"]["example"]["errorCode"] == "MeetingNotFound"
    )
    # Every request example is valid against its own schema (the seeds' string booleans included).
    resolver_base = {"components": document["components"]}
    checked = 0
    for operations in document["paths"].values():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if not content:
                continue
            schema = {**content["schema"], **resolver_base}
            target = document["components"]["schemas"].get(content["schema"].get("$ref", "").rsplit("/", 1)[-1], {})
            for example in target.get("examples", []):
                jsonschema.validate(example, schema)
                checked += 1
    assert checked >= 6  # postback create, update, delete; meeting create, patch, delete


def test_correlation_ids_are_echoed_in_a_safe_encoding(service: Stack) -> None:
    for sent, echoed in (("plain-id", "plain-id"), ("\u03b2-seed", "%CE%B2-seed"), ("tab\there", "tab%09here")):
        response = service.postback("POST", create_body(salesforceCorrelationId=sent), wait=0)
        assert response.status_code == 202 and response.headers["X-Correlation-Id"] == echoed
        assert service.job(response.headers["X-Job-Id"])["correlationId"] == sent  # stored as sent
    response = service.postback("POST", create_body(), wait=0, salesforceCorrelationId="q\u0001\u00e9")
    assert response.status_code == 202 and response.headers["X-Correlation-Id"] == "q%01%C3%A9"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("startTime", "0001-01-01T00:30:00+01:00"),
        ("endTime", "9999-12-31T23:30:00-01:00"),
        ("startTime", "1899-12-31T23:59:59Z"),
        ("endTime", "2201-01-01T00:00:00Z"),
    ],
)
def test_times_outside_the_sane_years_are_refused(service: Stack, untouched: None, field: str, value: str) -> None:
    payload = refused(service, "POST", create_body(**{field: value}), 422, "ErrorInvalidRequest", fields=(field,))
    assert any(d["field"] == field for d in payload["details"])
    window = {"from": "0001-01-01T00:00:00+05:00", "to": "2026-01-01T00:00:00Z"}
    answer = service.call(
        "POST", "/api/salesforce/scheduler/availability", json=[{"email": "a@contoso.com"}], params=window
    )
    assert_error_shape(answer, 422, "ErrorInvalidRequest")


def test_openapi_documents_the_endpoints(service: Stack) -> None:
    document = service.call("GET", "/openapi.json", token=None).json()
    paths = document["paths"]
    assert {"post", "put", "delete"} <= set(paths[POSTBACK])
    assert "get" in paths[f"{JOBS}/{{job_id}}"] and "get" in paths[JOBS] and "post" in paths[f"{JOBS}/{{job_id}}/retry"]
    schemas = document["components"]["schemas"]
    for method, required in (
        ("post", {"id", "organizerEmail", "startTime", "endTime"}),
        ("put", {"new"}),
        ("delete", {"id", "organizerEmail"}),
    ):
        ref = paths[POSTBACK][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        schema = schemas[ref.rsplit("/", 1)[1]]
        assert required <= set(schema["required"]), (method, schema)
        [example] = schema["examples"]
        assert example.get("id") or example["original"]["id"]
        assert {"200", "202"} <= set(paths[POSTBACK][method]["responses"])


# --- the commands refuse what they cannot do -----------------------------------------------------------------


def test_api_and_worker_refuse_an_unmigrated_database(stack: Stack, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    env = {**stack.env, "DOWNSYNC_DATABASE_URL": f"sqlite:///{empty}"}
    for args in (("api", "--port", str(free_port())), ("worker", "--concurrency=1")):
        result = stack.run_cli(*args, check=False, env=env)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert "downsync db upgrade" in output, output
        assert "migration none" in output, output
    with sqlite3.connect(empty) as connection:  # refusing created nothing
        assert connection.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_cli_refusals(stack: Stack) -> None:
    before = {k: v for k, v in store_counts(stack).items() if k in ("Tenant", "ApiToken")}
    result = stack.create_tenant("contoso", check=False)
    assert result.returncode == 1 and "tenant 'contoso' exists already" in result.stderr, result
    result = stack.run_cli("token", "create", "--tenant", "nosuch", check=False)
    assert result.returncode == 1 and "no tenant named 'nosuch'" in result.stderr, result
    for scopes in ("admin", "availability,admin", ","):
        result = stack.run_cli("token", "create", "--tenant", "contoso", "--scopes", scopes, check=False)
        assert result.returncode != 0 and "scopes must be some of availability, sync" in result.stderr, result
        assert result.stdout == ""
    assert {k: v for k, v in store_counts(stack).items() if k in ("Tenant", "ApiToken")} == before


# --- units: the field types and the error shape -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("true", True), ("TRUE", True), ("False", False), (" false ", False)],
)
def test_lenient_booleans(value: Any, expected: bool) -> None:
    assert fields._bool(value) is expected


@pytest.mark.parametrize("value", ["maybe", "yes", "1", 1, 0, None, "", []])
def test_booleans_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="true or false"):
        fields._bool(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2020-10-16T10:00:00Z", datetime(2020, 10, 16, 10, tzinfo=UTC)),
        ("2020-10-16T10:00:00z", datetime(2020, 10, 16, 10, tzinfo=UTC)),
        ("2020-10-16T12:00:00+02:00", datetime(2020, 10, 16, 10, tzinfo=UTC)),
        ("2020-10-16T05:30:00-04:30", datetime(2020, 10, 16, 10, tzinfo=UTC)),
        ("2020-10-16T10:00:00", datetime(2020, 10, 16, 10, tzinfo=UTC)),
        ("2020-10-16T10:00:00.999999Z", datetime(2020, 10, 16, 10, tzinfo=UTC)),
        (" 2020-10-16T10:00:00.5+00:00 ", datetime(2020, 10, 16, 10, tzinfo=UTC)),
        # "+02:00" sent unencoded in a query string arrives with a space for the plus.
        ("2020-10-16T12:00:00 02:00", datetime(2020, 10, 16, 10, tzinfo=UTC)),
    ],
)
def test_times_to_utc_seconds(value: str, expected: datetime) -> None:
    parsed = fields._time(value)
    assert parsed == expected and parsed.tzinfo is UTC and parsed.microsecond == 0
    assert fields.format_time(parsed) == "2020-10-16T10:00:00Z"


@pytest.mark.parametrize("value", ["yesterday", "", "2020-13-01T00:00:00Z", "16/10/2020 10:00", 1602842400, None])
def test_times_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        fields._time(value)


def test_emails() -> None:
    assert fields._email("Alice@Contoso.com") == "Alice@Contoso.com"  # echoed as written
    assert fields._email(" bob@contoso.com ") == "bob@contoso.com"
    for bad, message in (
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        (None, "e-mail address"),
        ("not-an-email", "not a valid"),
        ("a@b", "not a valid"),
        ("a b@c.com", "not a valid"),
        ("a@b@c.com", "not a valid"),
        ("x" * 320 + "@c.com", "not a valid"),
    ):
        with pytest.raises(ValueError, match=message):
            fields._email(bad)


def test_line_column() -> None:
    doc = '{\n"a": 1,\n}'
    assert errors._line_column(doc, 0) == (1, 1)
    assert errors._line_column(doc, doc.index('"a"')) == (2, 1)
    assert errors._line_column(doc, doc.index(",")) == (2, 7)
    assert errors._line_column(doc, doc.index("}")) == (3, 1)
    assert errors._line_column("", 0) == (1, 1)


def json_error(doc: str) -> errors.ApiError:
    try:
        json.loads(doc)
    except json.JSONDecodeError as exc:
        return errors.validation_error(
            RequestValidationError(
                [
                    {
                        "type": "json_invalid",
                        "loc": ("body", exc.pos),
                        "msg": "JSON decode error",
                        "input": {},
                        "ctx": {"error": exc.msg},
                    }
                ],
                body=exc.doc,
            )
        )
    raise AssertionError("valid JSON")


def test_invalid_json_messages() -> None:
    error = json_error('{\n  "a": [1, 2,],\n  "b": 1\n}')
    assert (error.status, error.code) == (400, "ErrorInvalidJson")
    assert "trailing comma at line 2 column 13" in error.message
    assert error.details == [{"field": "body", "problem": error.message}]
    assert "trailing comma at line 1 column 7 " in json_error('{"a":1,   }').message
    assert json_error('{"a" 1}').message == "the body is not valid JSON: Expecting ':' delimiter at line 1 column 6"
    assert "trailing comma" not in json_error('{"a":1,"b"}').message


def test_validation_error_names_fields() -> None:
    error = errors.validation_error(
        RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", "attendees", 1, "email"),
                    "msg": "Value error, 'a@b' is not valid",
                    "input": "a@b",
                },
                {"type": "missing", "loc": ("body", "new", "startTime"), "msg": "Field required", "input": {}},
                {
                    "type": "greater_than_equal",
                    "loc": ("query", "wait"),
                    "msg": "Input should be greater than or equal to 0",
                    "input": "-1",
                },
            ]
        )
    )
    assert (error.status, error.code) == (422, "ErrorInvalidRequest")
    assert error.details == [
        {"field": "attendees[1].email", "problem": "'a@b' is not valid"},
        {"field": "new.startTime", "problem": "is required"},
        {"field": "wait", "problem": "Input should be greater than or equal to 0"},
    ]
    assert error.message.startswith("attendees[1].email 'a@b' is not valid; new.startTime is required; wait")
    assert errors._field(("body",)) == "body"
    assert errors._field(("body", 0, "email")) == "[0].email"


def test_empty_body_is_invalid_json() -> None:
    error = errors.validation_error(
        RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "x", "input": None}])
    )
    assert (error.status, error.code) == (400, "ErrorInvalidJson") and "empty" in error.message


def test_text_a_calendar_cannot_hold_and_unreachable_addresses(service: Stack, sim: SimClient) -> None:
    # A control character is left out of what EWS writes (XML cannot carry it); the rest arrives as sent.
    eid = event_id()
    response = service.postback("POST", create_body(eid, subject="a\u0001b\u00e9", attendees=[]), wait=20)
    assert response.status_code == 200 and response.json()[0]["errorCode"] == "NoError", response.text
    [item] = [
        i for i in sim.calendar("alice@contoso.com") if i["extendedProperties"].get(f"{SET}:DownsyncEventId") == eid
    ]
    assert item["subject"] == "ab\u00e9"
    # An address no EWS request header can carry is no mailbox of the organisation, not a crash.
    missing = service.call(
        "GET",
        "/api/salesforce/scheduler/meeting",
        params={"id": "m-1", "organizerEmail": "j\u00fcrgen\u4e16@contoso.com"},
    )
    assert missing.status_code == 404 and missing.json()["errorCode"] == "MeetingNotFound"


@pytest.mark.parametrize("field", ["id", "subject", "salesforceCorrelationId"])
def test_lone_surrogates_are_refused(service: Stack, untouched: None, field: str) -> None:
    body = json.dumps(create_body(**{field: "PLACEHOLDER"})).replace("PLACEHOLDER", "\\udc00")
    payload = refused(service, "POST", body, 422, "ErrorInvalidRequest", fields=(field,))
    assert payload["details"][0]["field"] == field


def test_control_characters_are_no_address(service: Stack, untouched: None) -> None:
    refused(
        service,
        "POST",
        create_body(organizerEmail="a\u0001@contoso.com"),
        422,
        "ErrorInvalidRequest",
        fields=("organizerEmail",),
    )
