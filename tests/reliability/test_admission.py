"""Admission and backpressure through the real server: 429 past the limit and the queue,
disconnects noticed while queued or waiting for the first token, slow readers dropped."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import openai
import pytest

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.core.admission import Admission
from proxy.core.errors import TooManyRequests
from proxy.server.settings import ProxyConfig
from tests.proxy.helpers import body, toks
from tests.support.server_fixtures import TEST_DATE

URL = "/v1/chat/completions"
LONG = toks("<|channel|>analysis<|message|>" + "thinking " * 200 + "<|end|>")


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def metric(server, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.split()[-1])


def limited_server(make_server, script: Script, **limits):
    backend = ScriptedBackend(script)
    config = ProxyConfig(
        served_model_names=(backend.model_name,), conversation_date=TEST_DATE, **limits
    )
    return make_server(config, backend)


def test_past_the_limit_and_the_queue_requests_get_429_then_the_queue_moves(make_server):
    server = limited_server(
        make_server, Script([LONG], delay=0.05), max_concurrent_requests=1, max_queued_requests=1
    )
    backend = server.backend
    queued: dict[str, httpx.Response] = {}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        with client.stream("POST", URL, json=body(server.model, stream=True)) as first:
            lines = first.iter_lines()  # (kept: a dropped iterator closes the connection)
            next(lines)  # generating: it holds the only slot

            def second() -> None:
                with httpx.Client(base_url=server.url, timeout=60) as other:
                    queued["r"] = other.post(URL, json=body(server.model, max_tokens=3))

            waiting = threading.Thread(target=second)
            waiting.start()
            wait_for(lambda: metric(server, "harmony_proxy_requests_queued") == 1)
            sdk = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
            with pytest.raises(openai.RateLimitError) as refused:
                sdk.chat.completions.create(
                    model=server.model, messages=[{"role": "user", "content": "Hi"}]
                )
        # The first client left: its slot passes to the queued request.
        waiting.join(30)
    response = refused.value.response
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert queued["r"].status_code == 200
    assert queued["r"].json()["choices"][0]["finish_reason"] == "length"
    assert len(backend.requests) == 2  # the refused one never reached the engine
    wait_for(lambda: metric(server, "harmony_proxy_requests_in_flight") == 0)


def test_a_client_that_leaves_the_queue_never_reaches_the_engine(make_server):
    server = limited_server(
        make_server, Script([LONG], delay=0.05), max_concurrent_requests=1, max_queued_requests=4
    )
    backend = server.backend
    with httpx.Client(base_url=server.url, timeout=60) as client:
        with client.stream("POST", URL, json=body(server.model, stream=True)) as first:
            lines = first.iter_lines()
            next(lines)
            with httpx.Client(base_url=server.url, timeout=0.3) as impatient:
                with pytest.raises(httpx.ReadTimeout):
                    impatient.post(URL, json=body(server.model))
            wait_for(lambda: metric(server, "harmony_proxy_requests_queued") == 0)
    wait_for(lambda: metric(server, "harmony_proxy_requests_in_flight") == 0)
    assert len(backend.requests) == 1


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_leaves_before_the_first_token_aborts_the_generation(make_server, stream):
    # The engine never produces a first token: only noticing the disconnect can end the request.
    server = limited_server(make_server, Script([LONG], delay=1000))
    backend = server.backend
    with httpx.Client(base_url=server.url, timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post(URL, json=body(server.model, stream=stream))
    wait_for(lambda: len(backend.aborted) == 1)
    wait_for(lambda: metric(server, "harmony_proxy_requests_in_flight") == 0)
    assert backend.finished == []


def test_a_client_that_stops_reading_is_dropped_and_its_generation_aborted(make_server):
    # ~8 MB of answer (64 dashes per token), more than the kernel's socket buffers hold.
    (dashes,) = toks("-" * 64)
    many = toks("<|channel|>final<|message|>") + [dashes] * 120_000 + toks("<|return|>")
    backend = ScriptedBackend(Script([many], chunk_sizes=(32,)), max_model_len=200_000)
    config = ProxyConfig(
        served_model_names=(backend.model_name,),
        conversation_date=TEST_DATE,
        send_timeout_seconds=0.5,
    )
    server = make_server(config, backend)
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    payload = httpx.Request("POST", f"{server.url}{URL}", json=body(server.model, stream=True))
    head = f"POST {URL} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    content = payload.read()
    sock.sendall(f"{head}Content-Length: {len(content)}\r\n\r\n".encode() + content)
    try:  # ... and never read a byte
        wait_for(lambda: len(backend.aborted) == 1, timeout=60)
    finally:
        sock.close()
    assert backend.finished == []
    wait_for(lambda: metric(server, "harmony_proxy_requests_in_flight") == 0)


def test_admission_hands_slots_over_in_order_and_times_out_with_429():
    async def scenario() -> list[str]:
        admission = Admission(max_concurrent=1, max_queued=2, queue_timeout=5)
        order: list[str] = []
        await admission.acquire()

        async def waiter(name: str) -> None:
            await admission.acquire()
            order.append(name)

        tasks = [asyncio.create_task(waiter(n)) for n in ("a", "b")]
        await asyncio.sleep(0)
        with pytest.raises(TooManyRequests):
            await admission.acquire()  # the queue is full
        admission.release()
        await tasks[0]
        admission.release()
        await tasks[1]
        assert admission.active == 1 and admission.queued == 0
        quick = Admission(max_concurrent=1, max_queued=1, queue_timeout=0.01)
        await quick.acquire()
        with pytest.raises(TooManyRequests, match="waited"):
            await quick.acquire()
        assert quick.queued == 0
        return order

    assert asyncio.run(scenario()) == ["a", "b"]
