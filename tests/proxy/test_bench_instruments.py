"""The benchmarks' own instruments read and replay real streams faithfully.

`benchmarks/raw_sse_client.py` (the cheap load client of bench_ceiling.py) must count what a
real client sees and fail on what is not a stream; `benchmarks/floor_server.py` (the bare-uvicorn
floor) must write exactly the bytes the proxy wrote. Both are checked against the real server
on 127.0.0.1, with httpx as the reference reader.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from benchmarks.raw_sse_client import RawConnection, RawResult, StreamFailed
from proxy.server.probe import wait_until_ok
from tests.support.replay import chat_request
from tests.support.replicas import free_port
from tests.support.server_fixtures import RunningServer

ROOT = Path(__file__).resolve().parents[2]
URL = "/v1/chat/completions"


def _raw(server: RunningServer, bodies: list[dict]) -> list[RawResult]:
    host, _, port = server.url.removeprefix("http://").partition(":")

    async def run() -> list[RawResult]:
        connection = RawConnection(host, int(port))
        try:
            return [await connection.stream(URL, json.dumps(b).encode()) for b in bodies]
        finally:
            await connection.close()

    return asyncio.run(run())


def test_raw_client_counts_what_httpx_reads(replaying: RunningServer) -> None:
    model = replaying.backend.model_name
    bodies = [chat_request(model, tools=False), chat_request(model, tools=True)]
    with httpx.Client(base_url=replaying.url, timeout=60) as client:
        texts = [client.post(URL, json=b).text for b in bodies]
    # Both requests on one keep-alive connection, one after the other.
    results = _raw(replaying, bodies)
    for text, result in zip(texts, results, strict=True):
        usage = json.loads(text.split("data: ")[-2])["usage"]
        assert result.tokens == usage["completion_tokens"] > 0
        assert result.events == text.count("data: ")
        assert result.done
        assert result.ttfb > 0 and result.seconds >= result.ttfb


def test_raw_client_fails_on_an_error_response(replaying: RunningServer) -> None:
    body = chat_request("no-such-model", tools=False)
    with pytest.raises(StreamFailed, match="404"):
        _raw(replaying, [body])


def test_floor_server_writes_the_captured_bytes(replaying: RunningServer, tmp_path: Path) -> None:
    model = replaying.backend.model_name
    captured = {}
    with httpx.Client(base_url=replaying.url, timeout=60) as client:
        for kind, tools in (("answer", False), ("tools", True)):
            text = client.post(URL, json=chat_request(model, tools=tools)).text
            captured[kind] = [event + "\n\n" for event in text.split("\n\n") if event]
    events = tmp_path / "events.json"
    events.write_text(json.dumps(captured))
    port = free_port()
    script = ROOT / "benchmarks" / "floor_server.py"
    command = [sys.executable, str(script), "--port", str(port), "--events", str(events)]
    process = subprocess.Popen(command, cwd=ROOT)
    try:
        wait_until_ok(f"http://127.0.0.1:{port}/ready", timeout=60, process=process)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for kind, tools in (("answer", False), ("tools", True)):
                response = client.post(URL, json=chat_request(model, tools=tools))
                assert response.headers["content-type"].startswith("text/event-stream")
                assert response.text == "".join(captured[kind])
    finally:
        process.terminate()
        process.wait(timeout=30)
