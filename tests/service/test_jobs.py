"""Jobs: the per-mailbox results callers poll, pages of jobs, and re-running failed mailboxes."""

from __future__ import annotations

import time

from ews_sim.testing import SimClient
from tests.service.test_postback import create_body, event_id, tagged
from tests.support.stack import Stack


def test_wait_zero_answers_at_once_with_pending_entries(service: Stack, sim: SimClient) -> None:
    sim.fault(operation=service.dialect.find, latencyMs=400)
    response = service.postback("POST", create_body(event_id()), wait=0)
    assert response.status_code == 202
    assert {r["errorCode"] for r in response.json()} == {"Pending"}
    job = service.job(response.headers["X-Job-Id"])
    assert job["state"] == "pending" and job["finishedAt"] is None
    done = service.wait_job(job["jobId"])
    assert done["state"] == "succeeded" and done["finishedAt"] is not None


def test_a_short_wait_answers_202_and_the_job_finishes_later(service: Stack, sim: SimClient) -> None:
    sim.fault(operation=service.dialect.create, latencyMs=1500)
    started = time.monotonic()
    response = service.postback("POST", create_body(event_id()), wait=0.5)
    assert 0.5 <= time.monotonic() - started < 1.4
    assert response.status_code == 202
    job = service.wait_job(response.headers["X-Job-Id"])
    assert [r["errorCode"] for r in job["results"]] == ["NoError"] * 3


def test_job_view_carries_everything_the_contract_names(service: Stack, sim: SimClient) -> None:
    eid = event_id()
    response = service.postback(
        "POST", create_body(eid, salesforceCorrelationId=None), salesforceCorrelationId="corr-from-query"
    )
    job = service.job(response.headers["X-Job-Id"])
    assert set(job) == {
        "jobId",
        "kind",
        "operation",
        "eventId",
        "correlationId",
        "state",
        "createdAt",
        "finishedAt",
        "results",
    }
    assert (job["kind"], job["operation"], job["eventId"], job["correlationId"]) == (
        "postback",
        "create",
        eid,
        "corr-from-query",
    )
    assert job["createdAt"].endswith("Z") and job["finishedAt"] >= job["createdAt"]
    assert [r["email"] for r in job["results"]] == ["alice@contoso.com", "bob@contoso.com", "carol@contoso.com"]
    assert all(set(r) == {"email", "errorCode", "attempts", "updatedAt", "message"} for r in job["results"])


def test_jobs_page_newest_first_with_a_cursor_and_filters(service: Stack, sim: SimClient) -> None:
    since = service.call("GET", "/healthz").headers["date"]
    sim.add_mailboxes("pager@contoso.com")
    ids = []
    for n in range(5):
        body = create_body(event_id(), attendees=[] if n % 2 else [{"email": "ghost@contoso.com"}])
        ids.append(service.postback("POST", body).headers["X-Job-Id"])
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = service.call("GET", "/api/salesforce/scheduler/jobs", params=params).json()
        seen += [j["jobId"] for j in page["jobs"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    mine = [j for j in seen if j in ids]
    assert mine == list(reversed(ids))  # newest first, each once
    partial = service.call("GET", "/api/salesforce/scheduler/jobs", params={"state": "partial", "limit": 500}).json()
    assert {j["jobId"] for j in partial["jobs"]} & set(ids) == {ids[0], ids[2], ids[4]}
    assert all(j["state"] == "partial" for j in partial["jobs"])
    assert since  # the listing accepted the default window; a far-future since finds nothing:
    future = service.call("GET", "/api/salesforce/scheduler/jobs", params={"since": "2100-01-01T00:00:00Z"}).json()
    assert future["jobs"] == []


def test_retry_runs_failed_mailboxes_again(service: Stack, sim: SimClient) -> None:
    eid = event_id()
    body = create_body(eid, attendees=[{"email": "newhire@contoso.com", "isRequired": "true"}])
    response = service.postback("POST", body)
    job_id = response.headers["X-Job-Id"]
    assert [r["errorCode"] for r in response.json()] == ["NoError", "ErrorMailRecipientNotFound"]
    sim.add_mailboxes("newhire@contoso.com")  # the mailbox exists now
    retried = service.call("POST", f"/api/salesforce/scheduler/jobs/{job_id}/retry")
    assert retried.status_code == 202
    job = service.wait_job(job_id)
    assert job["state"] == "succeeded"
    newhire = job["results"][1]
    assert newhire["errorCode"] == "NoError" and newhire["attempts"] == 2
    assert len(tagged(sim, "newhire@contoso.com", eid)) == 1
    assert len(tagged(sim, "alice@contoso.com", eid)) == 1  # untouched by the retry
    assert service.call("POST", f"/api/salesforce/scheduler/jobs/{job_id}/retry", token="read").status_code == 403


def test_cli_retry_reruns_failed_jobs_since_a_time(service: Stack, sim: SimClient) -> None:
    eid = event_id()
    response = service.postback("POST", create_body(eid, attendees=[{"email": "late@contoso.com"}]))
    job_id = response.headers["X-Job-Id"]
    assert service.job(job_id)["state"] == "partial"
    sim.add_mailboxes("late@contoso.com")
    result = service.run_cli("retry", "--since", "2000-01-01T00:00:00Z", "--tenant", "contoso", "--timeout", "60")
    assert "re-running" in result.stdout and "0 still pending" in result.stdout
    assert service.job(job_id)["state"] == "succeeded"
    assert len(tagged(sim, "late@contoso.com", eid)) == 1
    refused = service.run_cli("retry", check=False)
    assert refused.returncode != 0 and "--job" in refused.stderr


def test_tasks_name_their_tenant_event_and_mailbox_for_flower(service: Stack, sim: SimClient) -> None:
    import ast
    import json

    import redis

    service.stop_workers()  # the messages stay in the queue to be read
    eid = event_id()
    response = service.postback("POST", create_body(eid), wait=0)
    assert response.status_code == 202
    messages = [json.loads(raw) for raw in redis.Redis.from_url(service.redis_url).lrange("downsync", 0, -1)]
    shown = [m["headers"]["argsrepr"] for m in messages if m["headers"]["task"] == "downsync.converge_many"]
    mine = [ast.literal_eval(s)[0] for s in shown if eid in s]
    # One message carries the write's three placements, each shown by its tenant, kind, event and mailbox.
    assert len(mine) == 1 and len(mine[0]) == 3
    assert all(isinstance(p, int) and label.startswith(f"contoso postback {eid} ") for p, label in mine[0])
    assert {label.rsplit(" ", 1)[1] for _, label in mine[0]} == {
        "alice@contoso.com",
        "bob@contoso.com",
        "carol@contoso.com",
    }
