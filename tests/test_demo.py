"""The README's first command: ``downsync demo`` runs everything on embedded defaults and takes a postback; SIGTERM
and SIGINT stop every process it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from downsync.demo import BANNER_END
from downsync.embedded import free_port, redis_answers


def _start_demo(tmp_path: Path, **settings: str) -> tuple[subprocess.Popen[bytes], Path, int, int]:
    api_port, sim_port, tls_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOWNSYNC_")}
    env.update(DOWNSYNC_STATE_DIR=str(tmp_path / "state"), **settings)
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
            start_new_session=True,  # the test's last resort below kills the group; the demo itself is sent one signal
        )
    return demo, log, api_port, sim_port


def _wait_for_banner(demo: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text(errors="replace")
        if BANNER_END in text:
            return text
        assert demo.poll() is None and time.monotonic() < deadline, text
        time.sleep(0.1)


def _descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid`` (whatever session it moved to), with its command line."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                try:
                    found[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                frontier.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has finished; only its parent's bookkeeping remains


def _stop_and_check(demo: subprocess.Popen[bytes], log: Path, signum: int) -> None:
    """Send the demo itself (not its group) ``signum``, as systemd, Docker, Kubernetes or a terminal would; it must
    exit and leave none of its processes running."""
    started = _descendants(demo.pid)
    commands = " | ".join(started.values())
    # The worker's supervisor and its Celery child at least, and the embedded Redis where there is one.
    assert commands.count("-m worker") + commands.count("downsync.supervise") >= 2, started
    try:
        os.kill(demo.pid, signum)
        assert demo.wait(timeout=40) is not None
        deadline = time.monotonic() + 5  # the kernel reaps a child its parent already waited for at once
        while (left := {pid: cmd for pid, cmd in started.items() if _alive(pid)}) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"left running after {signal.Signals(signum).name}: {left}\n{log.read_text(errors='replace')}"
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
        for pid in started:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_demo_runs_the_service_end_to_end(tmp_path: Path) -> None:
    # Nothing answers on port 1, so the demo must bring its own Redis, as on a fresh laptop.
    demo, log, api_port, sim_port = _start_demo(tmp_path, DOWNSYNC_REDIS_URL="redis://127.0.0.1:1/0")
    try:
        text = _wait_for_banner(demo, log)
        token, graph_token = re.findall(r"token: (dsk_\S+)", text)
        assert "started an embedded one" in text and f"curl -s -X POST 'http://127.0.0.1:{api_port}" in text
        assert "Redis: an embedded server at redis://127.0.0.1:" in text
        # The banner comes last: every process has started and said so before it, and the API already answers.
        assert text.index("ready.") < text.index("token: dsk_") and text.rstrip().endswith(BANNER_END)
        base = f"http://127.0.0.1:{api_port}"
        assert requests.get(f"{base}/healthz", timeout=1).status_code == 200
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
    except BaseException:
        os.killpg(demo.pid, signal.SIGKILL)
        raise
    _stop_and_check(demo, log, signal.SIGTERM)


def test_ctrl_c_stops_the_demo_on_its_own_redis_database(tmp_path: Path) -> None:
    """Without DOWNSYNC_REDIS_URL the demo takes database 15 of the local Redis (never db 0, which may be someone
    else's), or an embedded server where none answers; SIGINT (a terminal's Ctrl-C) stops everything."""
    demo, log, _, _ = _start_demo(tmp_path)
    try:
        text = _wait_for_banner(demo, log)
    except BaseException:
        os.killpg(demo.pid, signal.SIGKILL)
        raise
    if redis_answers("redis://127.0.0.1:6379/15"):
        assert "Redis: database 15 of the local Redis (127.0.0.1:6379), the demo's own" in text
    else:
        assert "Redis: an embedded server at" in text
    _stop_and_check(demo, log, signal.SIGINT)
