"""The README's first command: ``downsync demo`` runs everything on embedded defaults and takes a postback."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from downsync.embedded import free_port


def test_demo_runs_the_service_end_to_end(tmp_path: Path) -> None:
    api_port, sim_port, tls_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOWNSYNC_")}
    # Nothing answers on port 1, so the demo must bring its own Redis, as on a fresh laptop.
    env.update(DOWNSYNC_STATE_DIR=str(tmp_path / "state"), DOWNSYNC_REDIS_URL="redis://127.0.0.1:1/0")
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("downsync")),
                "demo",
                "--port",
                str(api_port),
                "--sim-port",
                str(sim_port),
                "--sim-tls-port",
                str(tls_port),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        token = None
        deadline = time.monotonic() + 60
        while token is None:
            text = log.read_text(errors="replace")
            found = re.findall(r"token: (dsk_\S+)", text)
            if len(found) == 2 and "ready." in text:
                token, graph_token = found
            assert demo.poll() is None and time.monotonic() < deadline, text
            time.sleep(0.1)
        assert "started an embedded one" in text and f"curl -s -X POST 'http://127.0.0.1:{api_port}" in text
        base = f"http://127.0.0.1:{api_port}"
        while requests.get(f"{base}/healthz", timeout=1).status_code != 200:
            time.sleep(0.1)
        body = {
            "id": "demo-1",
            "organizerEmail": "alice@demo.test",
            "subject": "Demo",
            "startTime": "2030-01-07T10:00:00Z",
            "endTime": "2030-01-07T11:00:00Z",
            "attendees": [{"email": "bob@demo.test", "isRequired": "true"}],
        }
        answer = requests.post(
            f"{base}/api/salesforce/scheduler/postback",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == [
            {"email": "alice@demo.test", "errorCode": "NoError"},
            {"email": "bob@demo.test", "errorCode": "NoError"},
        ]
        # The Graph tenant writes into the same organisation, through the other front door.
        through_graph = requests.post(
            f"{base}/api/salesforce/scheduler/postback",
            json={**body, "id": "demo-2", "subject": "Demo via Graph"},
            headers={"Authorization": f"Bearer {graph_token}"},
            timeout=30,
        )
        assert through_graph.status_code == 200 and {r["errorCode"] for r in through_graph.json()} == {"NoError"}
        assert "(Microsoft Graph, the same organisation)" in text and text.count("curl -s -X POST") == 3
        # The OAuth client printed beside the tokens works.
        oauth = re.search(r"refresh_token=(dsr_\S+) -d client_id=(dsc_\S+) -d client_secret=(\S+)", text)
        assert oauth is not None
        granted = requests.post(
            f"{base}/oauth/token",
            data=dict(zip(("refresh_token", "client_id", "client_secret"), oauth.groups(), strict=True))
            | {"grant_type": "refresh_token"},
            timeout=30,
        )
        assert granted.status_code == 200 and granted.json()["access_token"].startswith("dsa_")
        calendar = requests.get(f"http://127.0.0.1:{sim_port}/_sim/mailboxes/bob@demo.test/calendar", timeout=5).json()
        subjects = sorted(i["subject"] for i in calendar if i["start"] == "2030-01-07T10:00:00Z")
        assert subjects == ["Demo", "Demo via Graph"]
        assert any(i["freeBusy"] == "OOF" for i in calendar)  # the demo's own sample busy time
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        try:
            demo.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
