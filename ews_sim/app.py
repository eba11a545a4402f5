"""Building and running the simulator's aiohttp application, in the foreground or in a thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass

from aiohttp import web

from ews_sim.control import Control
from ews_sim.server import EWS_PATHS, Simulator


def make_app(sim: Simulator) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.add_routes([web.post(path, sim.ews) for path in EWS_PATHS])
    app.add_routes(Control(sim).routes())
    return app


@dataclass
class Running:
    sim: Simulator
    host: str
    port: int
    _loop: asyncio.AbstractEventLoop
    _runner: web.AppRunner
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ews_url(self) -> str:
        return f"{self.url}/EWS/Exchange.asmx"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def start_in_thread(sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> Running:
    """Serve on a free port (``port=0``) from a background thread; for tests and the demo."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_app(sim), access_log=None, handle_signals=False, shutdown_timeout=0.5)
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, sock).start())
        ready.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=run, name="ews-sim", daemon=True)
    thread.start()
    if not ready.wait(timeout=10):
        raise RuntimeError("the EWS simulator did not start")
    return Running(sim=sim, host=host, port=sock.getsockname()[1], _loop=loop, _runner=runner, _thread=thread)


def serve(sim: Simulator, host: str, port: int) -> None:
    web.run_app(make_app(sim), host=host, port=port, access_log=None, print=None)
