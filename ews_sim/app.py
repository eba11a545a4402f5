"""Building and running the simulator's aiohttp application, in the foreground or in a thread.

One application serves both front doors (EWS SOAP under ``/EWS/``, Graph under ``/v1.0/`` with
Entra's token endpoint under ``/{tenant}/``) and the control API, over HTTP, HTTPS or both.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from ews_sim.control import Control
from ews_sim.graph.server import GraphFrontDoor
from ews_sim.server import EWS_PATHS, Simulator
from ews_sim.tls import TlsFiles


def make_app(sim: Simulator) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.add_routes([web.post(path, sim.ews) for path in EWS_PATHS])
    app.add_routes(Control(sim).routes())
    app.add_routes(GraphFrontDoor(sim).routes())
    return app


@dataclass
class Running:
    sim: Simulator
    host: str
    port: int
    _loop: asyncio.AbstractEventLoop
    _runner: web.AppRunner
    _thread: threading.Thread
    tls_port: int | None = None  # a second listener serving the same simulator over HTTPS
    ca_file: Path | None = None  # the CA that signed its certificate, for clients to trust

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ews_url(self) -> str:
        return f"{self.url}/EWS/Exchange.asmx"

    @property
    def tls_url(self) -> str:
        if self.tls_port is None:
            raise RuntimeError("this simulator was started without TLS (start_in_thread(..., tls=...))")
        return f"https://{self.host}:{self.tls_port}"

    @property
    def graph_url(self) -> str:
        """Graph's base URL over HTTPS, as a Graph client is configured: ``https://127.0.0.1:PORT/v1.0``."""
        return f"{self.tls_url}/v1.0"

    def authority(self, tenant: str) -> str:
        """The msal authority of ``tenant`` (``https://127.0.0.1:PORT/contoso.com``)."""
        return f"{self.tls_url}/{tenant}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def _bound(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def start_in_thread(
    sim: Simulator, host: str = "127.0.0.1", port: int = 0, tls: TlsFiles | None = None, tls_port: int = 0
) -> Running:
    """Serve on a free port (``port=0``) from a background thread; for tests and the demo. With ``tls``, also serve
    HTTPS on a second port (``tls_port``, free by default)."""
    sock = _bound(host, port)
    tls_sock = _bound(host, tls_port) if tls is not None else None
    context = tls.server_context() if tls is not None else None
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_app(sim), access_log=None, handle_signals=False, shutdown_timeout=0.5)
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, sock).start())
        if tls_sock is not None:
            loop.run_until_complete(web.SockSite(runner, tls_sock, ssl_context=context).start())
        ready.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=run, name="ews-sim", daemon=True)
    thread.start()
    if not ready.wait(timeout=10):
        raise RuntimeError("the EWS simulator did not start")
    return Running(
        sim=sim,
        host=host,
        port=sock.getsockname()[1],
        _loop=loop,
        _runner=runner,
        _thread=thread,
        tls_port=tls_sock.getsockname()[1] if tls_sock is not None else None,
        ca_file=tls.ca_file if tls is not None else None,
    )


def serve(sim: Simulator, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
    web.run_app(make_app(sim), host=host, port=port, access_log=None, print=None, ssl_context=ssl_context)
