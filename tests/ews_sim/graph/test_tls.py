"""HTTPS: the plugin's second listener, and ``downsync ews-sim --tls`` / ``--cert --key`` run as a real process."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msal
import pytest
import requests
from click.testing import CliRunner

from downsync.cli import main
from ews_sim.app import start_in_thread
from ews_sim.config import OrgConfig
from ews_sim.server import Simulator
from ews_sim.testing import GRAPH_SCOPE, TEST_ORG, SimClient, graph_client
from ews_sim.tls import generate
from tests.ews_sim.graph.support import ALICE


def test_one_simulator_answers_over_http_and_https(sim: SimClient) -> None:
    assert sim.tls_url is not None and sim.tls_url.startswith("https://127.0.0.1:")
    assert sim.tls_url != sim.url.replace("http://", "https://")  # a second port
    over_tls = requests.get(f"{sim.tls_url}/_sim/mailboxes", verify=str(sim.ca_file), timeout=5)
    assert over_tls.json() == requests.get(f"{sim.url}/_sim/mailboxes", timeout=5).json()
    assert requests.post(f"{sim.tls_url}/EWS/Exchange.asmx", verify=str(sim.ca_file), timeout=5).status_code == 401
    # Graph over plain HTTP works too (msal alone insists on HTTPS).
    plain = httpx.get(f"{sim.url}/v1.0/users/{ALICE}/events", headers={"Authorization": f"Bearer {sim.graph_token()}"})
    assert plain.status_code == 200
    # Clients that do not trust the CA refuse the certificate.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sim.tls_url}/_sim/mailboxes", verify=ssl.create_default_context())


def test_without_the_csdl_graph_is_not_strict(tmp_path: Path) -> None:
    running = start_in_thread(Simulator(OrgConfig.from_dict(TEST_ORG)), tls=generate(tmp_path))
    try:
        client = SimClient(running)
        with graph_client(running, client.graph_token()) as graph:
            body = {
                "subject": "x",
                "colour": "red",  # refused by a strict simulator, ignored by this one
                "start": {"dateTime": "2030-01-07T09:00:00", "timeZone": "UTC"},
                "end": {"dateTime": "2030-01-07T10:00:00", "timeZone": "UTC"},
            }
            assert graph.post(f"/users/{ALICE}/events", json=body).status_code == 201
        assert client._call("GET", "/schema-errors")["graphStrict"] is False
    finally:
        running.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def cli_process() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def _start(started: list[subprocess.Popen[str]], *args: str) -> tuple[int, Path | None]:
    """Run ``downsync ews-sim ARGS --port <free>`` until it listens; return its port and the CA file it printed."""
    port = _free_port()
    command = [sys.executable, "-c", "from downsync.cli import main; main()", "ews-sim", *args, "--port", str(port)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    started.append(process)
    assert process.stderr is not None
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("CA file: ") or (line.startswith("Graph on ") and "--tls" not in args):
            break
    ca = next((m.group(1) for line in lines if (m := re.match(r"CA file: (.+)$", line.strip()))), None)
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return port, Path(ca) if ca else None
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"downsync ews-sim did not listen: {lines}")


def test_the_command_serves_https_with_a_generated_ca_that_msal_trusts(
    cli_process: list[subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, ca = _start(cli_process, "--tls", "--domain", "demo.test")
    assert ca is not None and ca.is_file()
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    app = msal.ConfidentialClientApplication(
        "demo",
        client_credential="demo",
        authority=f"https://127.0.0.1:{port}/demo.test",
        instance_discovery=False,
        verify=str(ca),
    )
    result = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert "access_token" in result, result
    with httpx.Client(
        base_url=f"https://127.0.0.1:{port}/v1.0",
        verify=ssl.create_default_context(cafile=str(ca)),
        headers={"Authorization": f"Bearer {result['access_token']}"},
    ) as graph:
        assert graph.get("/users/alice@demo.test/calendar").json()["owner"]["address"] == "alice@demo.test"
    # Plain HTTP is not served on that port.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/_sim/mailboxes", timeout=2)


def test_the_command_serves_https_with_a_given_certificate(
    cli_process: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    files = generate(tmp_path)
    port, printed = _start(cli_process, "--cert", str(files.cert_file), "--key", str(files.key_file))
    assert printed is None  # the operator brought the certificate, and knows its CA
    context = ssl.create_default_context(cafile=str(files.ca_file))
    assert httpx.get(f"https://127.0.0.1:{port}/_sim/mailboxes", verify=context).status_code == 200


def test_cert_and_key_go_together(tmp_path: Path) -> None:
    files = generate(tmp_path)
    result = CliRunner().invoke(main, ["ews-sim", "--cert", str(files.cert_file)])
    assert result.exit_code == 2 and "--cert and --key go together" in result.output
