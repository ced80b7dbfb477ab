"""Reading a replica's token stream: CPU per token of the HTTP clients the remote backend could use.

The remote backend reads one `/inference/v1/generate` event per token per request, so its HTTP
client's cost per event is paid for every streamed token. This starts the instant fake replica
(`tests/remote/fake_replica.py`, ~256-token completions) and streams from it, in this process,
with three readers, alternating `--rounds` times:

* `httpx aiter_lines`: httpx's line iterator and json.loads (the remote backend before);
* `httpx aiter_raw`: httpx's raw blocks split into lines with bytes operations, orjson;
* `aiohttp`: aiohttp's blocks (`iter_any`, its C HTTP parser), the same split (`SseLines`) and
  `parse_event` as `proxy/backends/remote.py` uses now.

Prints this process's CPU per token (time.process_time) and the ratio to the first reader.

    python benchmarks/bench_replica_read.py [--streams 1,16] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.proc_cpu import stop_process  # noqa: E402
from proxy.backends.base import SamplingConfig  # noqa: E402
from proxy.backends.remote_wire import GENERATE_PATH, SseLines, generate_body, parse_event  # noqa: E402
from proxy.server.probe import wait_until_ok  # noqa: E402
from tests.support.replicas import free_port  # noqa: E402

PROMPT = [200006, 1428, 200008, 3686, 200007, 200006, 173781]
Reader = Callable[[str, bytes, int, int], Awaitable[int]]


def _tokens(payload: dict | None) -> int:
    return sum(len(c.get("token_ids") or []) for c in payload["choices"]) if payload else 0


async def _httpx(url: str, body: bytes, streams: int, requests: int, *, raw: bool) -> int:
    limits = httpx.Limits(max_connections=streams + 2)
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def one() -> int:
            total = 0
            for _ in range(requests):
                async with client.stream(
                    "POST", GENERATE_PATH, content=body, headers=headers
                ) as response:
                    if raw:
                        lines = SseLines()
                        async for block in response.aiter_raw():
                            total += sum(_tokens(parse_event(x)) for x in lines.feed(block))
                    else:
                        async for line in response.aiter_lines():
                            total += _tokens(parse_event(line))
            return total

        return sum(await asyncio.gather(*(one() for _ in range(streams))))


async def aiohttp_blocks(url: str, body: bytes, streams: int, requests: int) -> int:
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one() -> int:
            total = 0
            for _ in range(requests):
                async with session.post(url + GENERATE_PATH, data=body, headers=headers) as r:
                    lines = SseLines()
                    async for block in r.content.iter_any():
                        total += sum(_tokens(parse_event(x)) for x in lines.feed(block))
            return total

        return sum(await asyncio.gather(*(one() for _ in range(streams))))


READERS: dict[str, Reader] = {
    "httpx aiter_lines (before)": functools.partial(_httpx, raw=False),
    "httpx aiter_raw + SseLines": functools.partial(_httpx, raw=True),
    "aiohttp iter_any + SseLines (now)": aiohttp_blocks,
}


async def bench(url: str, streams: list[int], rounds: int, level_tokens: int) -> None:
    body = orjson.dumps(generate_body(PROMPT, SamplingConfig(max_tokens=1024), "b", "m"))
    per_request = await _httpx(url, body, 1, 1, raw=False)  # warm-up, and the completion's size
    cpu: dict[tuple[str, int], list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for _ in range(rounds):
        for n in streams:
            requests = max(1, level_tokens // (n * per_request))
            for name, reader in READERS.items():
                began = time.process_time()
                tokens = await reader(url, body, n, requests)
                cpu[name, n][0] += time.process_time() - began
                cpu[name, n][1] += tokens
    print(f"{per_request} tokens per completion; CPU per token of this process, {rounds} rounds")
    for n in streams:
        first = None
        for name in READERS:
            seconds, tokens = cpu[name, n]
            us = 1e6 * seconds / tokens
            first = first or us
            print(f"  {n:>3} streams  {name:<36} {us:7.1f} us/token  {us / first:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="1,16")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=256, help="tokens per replayed completion")
    parser.add_argument("--level-tokens", type=int, default=8000)
    args = parser.parse_args()
    port = free_port()
    replica = [sys.executable, "-m", "tests.remote.fake_replica", "--port", str(port)]
    process = subprocess.Popen(
        [*replica, "--replay-tokens", str(args.tokens)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_ok(f"http://127.0.0.1:{port}/health", timeout=120, process=process)
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        streams = [int(s) for s in args.streams.split(",")]
        asyncio.run(bench(f"http://127.0.0.1:{port}", streams, args.rounds, args.level_tokens))
    finally:
        stop_process(process, timeout=30)


if __name__ == "__main__":
    main()
