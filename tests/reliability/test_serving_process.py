"""The serving process's own costs while it waits and while it streams (proxy/server/lifecycle.py).

DrainingServer's main loop is woken by its exit, not polling for it: uvicorn's own loop wakes
ten times a second to look at `should_exit`; ours waits for it, and otherwise wakes once a
second for the `Date` header. Both halves are checked on a real uvicorn server in a thread: an
idle second costs about one tick (ten under uvicorn's loop), and an exit set from another
thread stops the server promptly. And once started, the process collects its youngest GC
generation every 20,000 net allocations, not 700.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import uvicorn

from proxy.server.lifecycle import DrainingServer, Lifecycle

ROOT = Path(__file__).resolve().parents[2]


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


class CountingServer(DrainingServer):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config, Lifecycle())
        self.ticks = 0

    async def on_tick(self, counter: int) -> bool:
        self.ticks += 1
        return await super().on_tick(counter)


def test_an_idle_server_ticks_once_a_second_and_stops_at_once_when_told():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = CountingServer(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    response = httpx.get(f"http://127.0.0.1:{port}/")
    assert response.status_code == 200
    parsedate_to_datetime(response.headers["date"])  # the Date header is set, and valid

    before = server.ticks
    time.sleep(2.05)
    assert server.ticks - before <= 3  # uvicorn's own loop: about 20

    ticked = server.ticks
    while server.ticks == ticked:  # just after a tick: the next one is about a second away
        time.sleep(0.01)
    time.sleep(0.05)
    told = time.monotonic()
    server.should_exit = True  # from this thread, as a test fixture or a signal handler does
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert time.monotonic() - told < 0.5  # not at the next tick, 0.95 s away
    sock.close()


def test_a_started_server_freezes_its_heap_and_collects_young_objects_less_often():
    """In a fresh interpreter (the test process keeps Python's defaults)."""
    code = (
        "import gc\n"
        "from proxy.server.lifecycle import YOUNG_GC_THRESHOLD, freeze_startup_heap\n"
        "before = gc.get_threshold()\n"
        "freeze_startup_heap()\n"
        "after = gc.get_threshold()\n"
        "assert before[0] == 700 and after == (YOUNG_GC_THRESHOLD, *before[1:]), (before, after)\n"
        "assert YOUNG_GC_THRESHOLD == 20_000 and gc.get_freeze_count() > 0\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
