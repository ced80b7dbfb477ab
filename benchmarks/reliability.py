"""Load, faults and drain against the real server (`harmony-proxy serve`, demo engine), in numbers.

Each scenario starts the real CLI as a subprocess on 127.0.0.1 (the engine loads each time,
20-45 s on CPU), drives it with real HTTP clients, and prints one table row:

* load        256 concurrent streaming clients, three rounds: failed streams, the proxy's RSS
              after each round, in-flight gauges and the engine's running count back at 0
* disconnect  128 clients leaving at random points (some before the first token): every
              generation aborted, measured in the engine's scheduler (`vllm:num_requests_*`)
* drain       a real SIGTERM during 4 live streams: `/ready`, a new request, how each stream
              ended, the exit code
* kill        the engine process killed mid-stream: how the streams ended, the exit code
* torture     see benchmarks/torture.py (random-weight model)

    python benchmarks/reliability.py                 # all scenarios (~5 min on 2 CPU cores)
    python benchmarks/reliability.py load drain      # some of them
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
MODEL = "gpt-oss-demo"
URL = "/v1/chat/completions"


# ------------------------------------------------------------------------------ the server
@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mib(self) -> float:
        return psutil.Process(self.pid).memory_info().rss / 2**20

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for line in httpx.get(f"{self.url}/metrics", timeout=30).text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                key = name.split("{")[0]
                out[key] = out.get(key, 0.0) + float(value)
        return out

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(*args: str, name: str = "server") -> Server:
    port = free_port()
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"harmony-proxy-{name}-{port}.log"
    log = log_path.open("w")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--port", str(port), "--max-model-len", "2048"]
        + list(args),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Server(proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 600
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}:\n{server.log_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/ready", timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("server not ready after 600 s")
        time.sleep(0.5)


def wait_until(predicate, timeout: float = 120.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


# ------------------------------------------------------------------------------ clients
@dataclass
class StreamOutcome:
    status: int | None = None
    events: list[str] = field(default_factory=list)
    exception: str | None = None

    @property
    def done(self) -> bool:
        return bool(self.events) and self.events[-1] == "[DONE]"

    @property
    def errors(self) -> list[dict]:
        return [p["error"] for p in self._payloads() if "error" in p]

    @property
    def finished(self) -> bool:
        return any(c.get("finish_reason") for p in self._payloads() for c in p.get("choices") or [])

    def _payloads(self) -> list[dict]:
        return [json.loads(e) for e in self.events if e != "[DONE]"]

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.done and self.finished and not self.errors


def payload(
    max_tokens: int, seed: int, content: str = "Tell me about the sea.", temperature: float = 1.0
) -> dict:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "stream": True,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "seed": seed,
    }


async def stream_once(
    client: httpx.AsyncClient,
    body: dict,
    leave_after: int | None = None,
    out: StreamOutcome | None = None,
) -> StreamOutcome:
    """One streaming request; `leave_after` events then disconnect (0: before any event)."""
    out = out if out is not None else StreamOutcome()
    try:
        async with client.stream("POST", URL, json=body) as response:
            out.status = response.status_code
            if leave_after == 0:
                return out
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    out.events.append(line[5:].strip())
                    if leave_after is not None and len(out.events) >= leave_after:
                        return out
    except Exception as exc:  # noqa: BLE001 - counted as a failed stream
        out.exception = f"{type(exc).__name__}: {exc}"
    return out


def client_for(server: Server, n: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=n + 8, max_keepalive_connections=n + 8)
    return httpx.AsyncClient(base_url=server.url, timeout=600, limits=limits)


# ------------------------------------------------------------------------------ scenarios
Row = dict[str, object]


def scenario_load(server: Server, clients: int = 256, rounds: int = 3) -> Row:
    async def round_(seed: int) -> list[StreamOutcome]:
        async with client_for(server, clients) as client:
            return await asyncio.gather(
                *(stream_once(client, payload(48, seed * 1000 + i)) for i in range(clients))
            )

    asyncio.run(round_(0))  # warm-up (not counted): allocator, caches, first grammar-free path
    rss = [server.rss_mib()]
    sent = failed = 0
    started = time.monotonic()
    for r in range(rounds):
        outcomes = asyncio.run(round_(r + 1))
        sent += len(outcomes)
        failed += sum(not o.ok for o in outcomes)
        wait_until(lambda: server.metrics()["harmony_proxy_requests_in_flight"] == 0)
        rss.append(server.rss_mib())
    m = server.metrics()
    return {
        "case": f"load: {clients} concurrent streams x {rounds} rounds",
        "requests": sent,
        "failures": failed,
        "leaked": int(m["harmony_proxy_requests_in_flight"] + m["vllm:num_requests_running"]),
        "rss_mib": " -> ".join(f"{x:.0f}" for x in rss),
        "note": f"{time.monotonic() - started:.0f} s",
    }


def scenario_disconnect(server: Server, clients: int = 128) -> Row:
    rng = random.Random(5)
    before = server.metrics()
    rss_before = server.rss_mib()

    async def run() -> list[StreamOutcome]:
        async with client_for(server, clients) as client:
            jobs = []
            for i in range(clients):
                leave = rng.choice([0, 1, 2, 5, 10, 20, 40])
                jobs.append(stream_once(client, payload(1500, 50_000 + i), leave_after=leave))
            return await asyncio.gather(*jobs)

    outcomes = asyncio.run(run())
    settled = wait_until(
        lambda: (
            (m := server.metrics())["vllm:num_requests_running"] == 0
            and m["vllm:num_requests_waiting"] == 0
            and m["harmony_proxy_requests_in_flight"] == 0
        )
    )
    after = server.metrics()
    aborted = after["harmony_proxy_client_disconnects_total"] - before.get(
        "harmony_proxy_client_disconnects_total", 0
    )
    return {
        "case": "random disconnects (some before the first token)",
        "requests": len(outcomes),
        "failures": sum(o.exception is not None for o in outcomes),
        "leaked": int(
            after["vllm:num_requests_running"]
            + after["vllm:num_requests_waiting"]
            + after["harmony_proxy_requests_in_flight"]
        )
        + (0 if settled else 1),
        "rss_mib": f"{rss_before:.0f} -> {server.rss_mib():.0f}",
        "note": f"{aborted:.0f} aborted; engine running/waiting 0: {settled}",
    }


def _long_streams(server: Server, n: int) -> tuple[asyncio.AbstractEventLoop, list]:
    loop = asyncio.new_event_loop()
    client = client_for(server, n)
    # The demo model answers in ~40 tokens. Forced to call a tool with a free-text argument, at
    # temperature 2 (almost uniform sampling), it writes that string until max_tokens.
    tool = {
        "type": "function",
        "function": {
            "name": "write",
            "parameters": {
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
            },
        },
    }
    long = {"tools": [tool], "tool_choice": "required"}
    # Compile the grammar once (slow the first time) so the streams start together.
    warm = {**payload(4, 1, "Hi"), **long, "stream": False}
    loop.run_until_complete(client.post(URL, json=warm))
    outcomes = [StreamOutcome() for _ in range(n)]
    tasks = [
        loop.create_task(
            stream_once(
                client, {**payload(1900, 777 + i, "Hi", temperature=2.0), **long}, out=outcomes[i]
            )
        )
        for i in range(n)
    ]

    async def live() -> None:  # every stream has sent a few events
        deadline = time.monotonic() + 300
        while any(len(o.events) < 3 and not t.done() for o, t in zip(outcomes, tasks, strict=True)):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)

    loop.run_until_complete(live())
    return loop, [client, tasks]


def scenario_drain(grace: float = 3.0) -> Row:
    server = start_server("--drain-grace", str(grace), name="drain")
    rss = server.rss_mib()
    loop, (client, tasks) = _long_streams(server, 4)
    live = sum(not t.done() for t in tasks)
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)

    async def probe() -> tuple[object, object, str | None]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as probe_client:
            await asyncio.sleep(0.3)
            try:
                ready = await probe_client.get("/ready")
                new = await probe_client.post(URL, json={**payload(8, 1), "stream": False})
            except httpx.TransportError as exc:  # already gone: nothing was open
                return type(exc).__name__, "-", None
            return ready.status_code, new.status_code, new.headers.get("retry-after")

    ready, new, retry_after = loop.run_until_complete(probe())
    outcomes = loop.run_until_complete(asyncio.gather(*tasks))
    loop.run_until_complete(client.aclose())
    code = server.proc.wait(120)
    took = time.monotonic() - signalled
    done = sum(o.done for o in outcomes)
    cut = sum(bool(o.errors) for o in outcomes)
    return {
        "case": f"SIGTERM during {live} live streams (grace {grace:.0f} s)",
        "requests": len(outcomes) + 1,
        "failures": sum(not o.done or o.exception is not None for o in outcomes),
        "leaked": 0 if code == 0 else "?",
        "rss_mib": f"{rss:.0f}",
        "note": f"/ready {ready}, new request {new} (Retry-After {retry_after}); "
        f"{done}/4 [DONE], {cut} error events; exit {code} after {took:.1f} s",
    }


def scenario_kill() -> Row:
    server = start_server(name="kill")
    engine = psutil.Process(server.pid).children(recursive=True)
    loop, (client, tasks) = _long_streams(server, 4)
    for proc in engine:
        proc.kill()
    outcomes = loop.run_until_complete(asyncio.gather(*tasks))
    loop.run_until_complete(client.aclose())
    code = server.proc.wait(120)
    return {
        "case": "engine process killed mid-stream",
        "requests": len(outcomes),
        "failures": sum(not o.done or not o.errors for o in outcomes),
        "leaked": "-",
        "rss_mib": "-",
        "note": f"{sum(o.done for o in outcomes)}/4 [DONE], "
        f"{sum(bool(o.errors) for o in outcomes)} error events; exit {code} (non-zero expected)",
    }


def print_table(rows: list[Row]) -> None:
    headers = ["case", "requests", "failures", "leaked", "rss_mib", "note"]
    print()
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        print("| " + " | ".join(str(row.get(h, "")) for h in headers) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "scenarios", nargs="*", default=["load", "disconnect", "drain", "kill"], metavar="scenario"
    )
    parser.add_argument("--clients", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows: list[Row] = []
    if {"load", "disconnect"} & set(args.scenarios):
        server = start_server(name="load")
        try:
            if "load" in args.scenarios:
                rows.append(scenario_load(server, args.clients, args.rounds))
                print_table(rows[-1:])
            if "disconnect" in args.scenarios:
                rows.append(scenario_disconnect(server))
                print_table(rows[-1:])
            tracebacks = server.log_text().count("Traceback")
        finally:
            code = server.stop()
        rows.append(
            {
                "case": "load server: SIGTERM when idle",
                "requests": 0,
                "failures": int(code != 0) + tracebacks,
                "leaked": "-",
                "rss_mib": "-",
                "note": f"exit {code}; {tracebacks} tracebacks in its log",
            }
        )
    if "drain" in args.scenarios:
        rows.append(scenario_drain())
        print_table(rows[-1:])
    if "kill" in args.scenarios:
        rows.append(scenario_kill())
    print_table(rows)


if __name__ == "__main__":
    main()
