"""The contract's section 6 end to end: bearer tokens, OAuth 2.0 refresh tokens, HMAC-signed requests, the legacy
Basic login, scopes, other tenants, and the per-tenant rate limit shared by every API process."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import pytest
import requests
from sqlalchemy import update
from sqlmodel import Session

from downsync.db import get_engine
from downsync.models import ApiToken, utcnow
from tests.service.test_input import assert_error_shape, create_body
from tests.support.stack import Stack

POSTBACK = "/api/salesforce/scheduler/postback"
JOBS = "/api/salesforce/scheduler/jobs"


@pytest.fixture(autouse=True)
def http_layer_only(stack: Stack) -> None:
    if stack.dialect.name != "ews":
        pytest.skip("authentication does not depend on the calendar backend; the EWS stacks cover it")


def new_tenant(stack: Stack, *extra: str) -> str:
    name = f"auth-{uuid.uuid4().hex[:8]}"
    stack.create_tenant(name, extra=list(extra))
    return name


def new_client(stack: Stack, tenant: str, scopes: str = "availability,sync") -> dict[str, str]:
    out = stack.run_cli("client", "create", "--tenant", tenant, "--scopes", scopes).stdout
    return dict(line.split("=", 1) for line in out.strip().splitlines())


def grant(stack: Stack, client: dict[str, str], refresh_token: str, **extra: str) -> requests.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    form |= {"client_id": client["client_id"], "client_secret": client["client_secret"]}
    return requests.post(f"{stack.api_url}/oauth/token", data=form, timeout=30)


def jobs(stack: Stack, token: str, base: str | None = None) -> requests.Response:
    return requests.get(f"{base or stack.api_url}{JOBS}", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_oauth_refresh_tokens_rotate_and_a_reused_one_revokes_its_family(service: Stack) -> None:
    client = new_client(service, new_tenant(service))
    first = grant(service, client, client["refresh_token"])
    assert first.status_code == 200, first.text
    issued = first.json()
    assert issued["token_type"] == "Bearer" and issued["expires_in"] == 3600
    assert issued["scope"] == "availability sync" and first.headers["Cache-Control"] == "no-store"
    assert jobs(service, issued["access_token"]).status_code == 200
    second = grant(service, client, issued["refresh_token"]).json()
    assert second["refresh_token"] != issued["refresh_token"]
    # The first refresh token again: stolen or replayed. Everything of its family stops working.
    reused = grant(service, client, client["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert "family" in reused.json()["error_description"]
    for token in (issued["access_token"], second["access_token"]):
        assert_error_shape(jobs(service, token), 401, "ErrorUnauthorized")
    assert grant(service, client, second["refresh_token"]).json()["error"] == "invalid_grant"


def test_oauth_errors_are_rfc_6749s(service: Stack) -> None:
    client = new_client(service, new_tenant(service), scopes="availability")
    bad_secret = grant(service, {**client, "client_secret": "wrong"}, client["refresh_token"])
    assert bad_secret.status_code == 401 and bad_secret.json()["error"] == "invalid_client"
    assert "WWW-Authenticate" in bad_secret.headers
    wrong_type = requests.post(
        f"{service.api_url}/oauth/token", data={"grant_type": "password", "refresh_token": "x"}, timeout=30
    )
    assert wrong_type.status_code == 400 and wrong_type.json()["error"] == "unsupported_grant_type"
    missing = requests.post(f"{service.api_url}/oauth/token", data={"grant_type": "refresh_token"}, timeout=30)
    assert missing.json()["error"] == "invalid_request"
    unknown = grant(service, client, "dsr_not-a-token")
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_grant"
    wider = grant(service, client, client["refresh_token"], scope="availability sync")
    assert wider.json()["error"] == "invalid_scope"
    basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
    by_basic = requests.post(
        f"{service.api_url}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": client["refresh_token"]},
        headers={"Authorization": f"Basic {basic}"},
        timeout=30,
    )
    assert by_basic.status_code == 200 and by_basic.json()["scope"] == "availability"


def test_an_expired_or_revoked_token_is_refused_by_every_api_process(service: Stack) -> None:
    tenant = new_tenant(service)
    client = new_client(service, tenant)
    access = grant(service, client, client["refresh_token"]).json()["access_token"]
    with Session(get_engine(service.database_url)) as session:
        session.exec(
            update(ApiToken)
            .where(ApiToken.token_hash == hashlib.sha256(access.encode()).hexdigest())
            .values(expires_at=utcnow())
        )
        session.commit()
    refused = assert_error_shape(jobs(service, access), 401, "ErrorUnauthorized")
    assert "expired" in refused["message"]
    token = service.run_cli("token", "create", "--tenant", tenant).stdout.strip()
    other, other_url = service.extra_api()
    try:
        assert jobs(service, token).status_code == 200 and jobs(service, token, other_url).status_code == 200
        listed = service.run_cli("token", "list", "--tenant", tenant).stdout.splitlines()
        row = next(line for line in listed[1:] if line.split("\t")[2] == "-")
        assert token not in "\n".join(listed) and row.split("\t")[5] != "-"  # last used is recorded
        service.run_cli("token", "revoke", row.split("\t")[0])
        for base in (service.api_url, other_url):
            assert_error_shape(jobs(service, token, base), 401, "ErrorUnauthorized")
        again = service.run_cli("token", "revoke", row.split("\t")[0], check=False)
        assert again.returncode == 1 and "no live token" in again.stderr
    finally:
        other.stop()
    service.run_cli("client", "revoke", client["client_id"])
    assert grant(service, client, client["refresh_token"]).json()["error"] == "invalid_client"
    assert client["client_id"] in service.run_cli("client", "list", "--tenant", tenant).stdout


def signed(
    client: dict[str, str], method: str, path: str, body: bytes = b"", query: str = "", **kw: Any
) -> dict[str, str]:
    timestamp = str(kw.get("timestamp", int(time.time())))
    message = f"{method}\n{path}{'?' + query if query else ''}\n{timestamp}\n{hashlib.sha256(body).hexdigest()}"
    signature = base64.b64encode(
        hmac.new(client["client_secret"].encode(), message.encode(), hashlib.sha256).digest()
    ).decode()
    return {"X-Client-Id": client["client_id"], "X-Timestamp": timestamp, "X-Signature": signature}


def test_hmac_signed_requests_are_checked_whole_and_accepted_once(service: Stack) -> None:
    tenant = new_tenant(service)
    client = new_client(service, tenant)
    body = json.dumps(create_body(id=f"hmac-{uuid.uuid4().hex[:8]}")).encode()
    url = f"{service.api_url}{POSTBACK}?wait=0"
    headers = signed(client, "POST", POSTBACK, body, "wait=0")
    accepted = requests.post(url, data=body, headers=headers, timeout=30)
    assert accepted.status_code == 202, accepted.text
    job = requests.get(
        f"{service.api_url}{accepted.headers['Location']}",
        headers=signed(client, "GET", accepted.headers["Location"]),
        timeout=30,
    )
    assert job.status_code == 200 and job.json()["jobId"] == accepted.headers["X-Job-Id"]
    replay = requests.post(url, data=body, headers=headers, timeout=30)
    assert "used before" in assert_error_shape(replay, 401, "ErrorUnauthorized")["message"]
    tampered = requests.post(
        url, data=body.replace(b"alice", b"bobby"), headers=signed(client, "POST", POSTBACK, body, "wait=0"), timeout=30
    )
    assert "does not match" in assert_error_shape(tampered, 401, "ErrorUnauthorized")["message"]
    skewed = signed(client, "POST", POSTBACK, body, "wait=0", timestamp=int(time.time()) - 301)
    assert (
        "clock"
        in assert_error_shape(requests.post(url, data=body, headers=skewed, timeout=30), 401, "ErrorUnauthorized")[
            "message"
        ]
    )
    stranger = signed({**client, "client_id": "dsc_nobody"}, "POST", POSTBACK, body, "wait=0")
    assert (
        "X-Client-Id"
        in assert_error_shape(requests.post(url, data=body, headers=stranger, timeout=30), 401, "ErrorUnauthorized")[
            "message"
        ]
    )


def test_scopes_and_other_tenants(service: Stack) -> None:
    reader = new_client(service, new_tenant(service), scopes="availability")
    body = json.dumps(create_body()).encode()
    refused = requests.post(
        f"{service.api_url}{POSTBACK}", data=body, headers=signed(reader, "POST", POSTBACK, body), timeout=30
    )
    assert "'sync' scope" in assert_error_shape(refused, 403, "ErrorForbidden")["message"]
    mine = service.postback("POST", create_body(), wait=0)
    job = mine.headers["X-Job-Id"]
    theirs = new_client(service, new_tenant(service))
    for method, path in (("GET", f"{JOBS}/{job}"), ("POST", f"{JOBS}/{job}/retry")):
        answer = requests.request(method, f"{service.api_url}{path}", headers=signed(theirs, method, path), timeout=30)
        assert_error_shape(answer, 404, "ErrorJobNotFound")


def test_the_legacy_basic_login_is_off_unless_turned_on(service: Stack) -> None:
    tenant = new_tenant(service)
    login = {"Authorization": "Basic " + base64.b64encode(b"admin:legacy-pass").decode()}
    off = requests.get(f"{service.api_url}{JOBS}", headers=login, timeout=30)
    assert_error_shape(off, 401, "ErrorUnauthorized")
    api, url = service.extra_api(
        legacy_basic_enabled="true", legacy_basic_password="legacy-pass", legacy_basic_tenant=tenant
    )
    try:
        assert requests.get(f"{url}{JOBS}", headers=login, timeout=30).status_code == 200
        wrong = {"Authorization": "Basic " + base64.b64encode(b"admin:nope").decode()}
        assert_error_shape(requests.get(f"{url}{JOBS}", headers=wrong, timeout=30), 401, "ErrorUnauthorized")
    finally:
        api.stop()
    assert "deprecated" in api.log.read_text()


def test_the_rate_limit_is_the_tenants_across_api_processes(service: Stack) -> None:
    tenant = new_tenant(service, "--rate-limit-writes", "4/minute")
    token = service.run_cli("token", "create", "--tenant", tenant).stdout.strip()
    other, other_url = service.extra_api()
    try:
        answers = []
        for n in range(6):
            base = service.api_url if n % 2 == 0 else other_url
            answers.append(
                requests.post(
                    f"{base}{POSTBACK}?wait=0",
                    json=create_body(),
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=30,
                )
            )
    finally:
        other.stop()
    assert [a.status_code for a in answers] == [202, 202, 202, 202, 429, 429]
    limited = assert_error_shape(answers[4], 429, "ErrorTooManyRequests")
    assert "4/minute" in limited["message"] and 1 <= int(answers[4].headers["Retry-After"]) <= 60
    # Availability is counted apart, and another tenant is not held back.
    ask = service.call(
        "POST",
        "/api/salesforce/scheduler/availability",
        token=token,
        json=[{"email": "alice@contoso.com"}],
        params={"from": "2026-05-11T08:00:00Z", "to": "2026-05-12T08:00:00Z"},
    )
    assert ask.status_code == 200
    assert service.postback("POST", create_body(), wait=0).status_code == 202
