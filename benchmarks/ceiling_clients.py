"""The streaming clients of benchmarks/bench_ceiling.py: httpx (a real client) or the raw one.

Each client process runs `client_proc`: `streams` concurrent streams, each sending `requests`
chat requests one after the other (`tool_share` of them with the weather tool), all starting at
`start_at`; it returns the results, its own CPU time and the wall-clock span. `measure_ttft`
times single requests to the first byte of the body.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from dataclasses import dataclass, field

import httpx

from benchmarks.raw_sse_client import RawConnection
from tests.support.replay import chat_request

MODEL = "gpt-oss-demo"
_USAGE = re.compile(rb'"completion_tokens":(\d+)')


@dataclass
class Result:
    tokens: int
    ttfb: float  # request sent -> first byte of the body
    seconds: float
    events: int
    done: bool
    retries: int = 0
    # The raw client's gaps between reads that carried events (the ITL a reader sees).
    gaps: list[float] = field(default_factory=list, repr=False)


async def one_stream(client: httpx.AsyncClient, url: str, body: dict) -> Result:
    """One streamed request; a connection that fails before any byte of the response (an idle
    keep-alive connection the server closed while this process was starved of CPU) is retried
    on a fresh one, at most twice, and counted."""
    for attempt in range(3):
        try:
            result = await _one_stream(client, url, body)
            result.retries = attempt
            return result
        except _NoResponse:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class _NoResponse(Exception):
    """The connection failed before the first byte of the response."""


async def _one_stream(client: httpx.AsyncClient, url: str, body: dict) -> Result:
    started = time.perf_counter()
    ttfb = 0.0
    parts: list[bytes] = []
    try:
        async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            async for part in response.aiter_raw():
                if not parts:
                    ttfb = time.perf_counter() - started
                parts.append(part)
    except (httpx.ReadError, httpx.RemoteProtocolError, httpx.ConnectError) as exc:
        if not parts:
            raise _NoResponse() from exc
        raise
    data = b"".join(parts)
    found = _USAGE.findall(data[-2000:])
    return Result(
        tokens=int(found[-1]) if found else 0,
        ttfb=ttfb,
        seconds=time.perf_counter() - started,
        events=data.count(b"data: "),
        # [DONE] last, up to a keep-alive comment.
        done=b"data: [DONE]" in data[-400:],
    )


async def _client_main(
    url: str, streams: int, requests: int, tool_share: float, start_at: float, kind: str
) -> tuple[list[Result], float, float, float]:
    bodies = [chat_request(MODEL, tools=False), chat_request(MODEL, tools=True)]
    counter = iter(range(10**9))

    def next_body() -> int:
        """0 or 1 (with tools), spreading `tool_share` of the requests evenly."""
        i = next(counter)
        return int(int((i + 1) * tool_share) > int(i * tool_share))

    async def timed(workers: list) -> tuple[list[Result], float, float, float]:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        cpu0, began = time.process_time(), time.time()
        results = [r for rs in await asyncio.gather(*workers) for r in rs]
        return results, time.process_time() - cpu0, began, time.time()

    if kind == "raw":
        host, _, port = url.removeprefix("http://").partition(":")
        encoded = [json.dumps(b).encode() for b in bodies]

        async def raw_worker() -> list[Result]:
            connection = RawConnection(host, int(port))
            out = []
            try:
                for _ in range(requests):
                    body = encoded[next_body()]
                    r = await connection.stream("/v1/chat/completions", body)
                    out.append(Result(r.tokens, r.ttfb, r.seconds, r.events, r.done, gaps=r.gaps))
            finally:
                await connection.close()
            return out

        return await timed([raw_worker() for _ in range(streams)])

    limits = httpx.Limits(max_connections=streams + 4, max_keepalive_connections=streams + 4)
    async with httpx.AsyncClient(limits=limits, timeout=600) as client:

        async def worker() -> list[Result]:
            return [await one_stream(client, url, bodies[next_body()]) for _ in range(requests)]

        return await timed([worker() for _ in range(streams)])


def client_proc(
    url: str, streams: int, requests: int, tool_share: float, start_at: float, kind: str
) -> tuple[list[Result], float, float, float]:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(_client_main(url, streams, requests, tool_share, start_at, kind))


def measure_ttft(url: str, requests: int, kind: str = "httpx") -> tuple[float, float]:
    """(p50, p90) seconds from sending a request to the first byte of its body, one at a time,
    with the `--client` kind (the raw client adds less of its own time to the figure)."""
    body = chat_request(MODEL, tools=False)

    async def run() -> list[float]:
        if kind == "raw":
            host, _, port = url.removeprefix("http://").partition(":")
            connection = RawConnection(host, int(port))
            encoded = json.dumps(body).encode()
            try:
                return [
                    (await connection.stream("/v1/chat/completions", encoded)).ttfb
                    for _ in range(requests)
                ]
            finally:
                await connection.close()
        async with httpx.AsyncClient(timeout=60) as client:
            return [(await one_stream(client, url, body)).ttfb for _ in range(requests)]

    samples = sorted(asyncio.run(run()))
    return statistics.median(samples), samples[int(0.9 * (len(samples) - 1))]
