"""What happens before work starts: keys before bodies, and slots held until planning ends.

The edge refuses an unauthenticated client from its headers alone (it never reads the body),
and a client that disconnects while its request is being planned does not free its admission
slot until the planning thread has finished: the concurrency limit bounds the work actually
running, not the clients still connected.
"""

from __future__ import annotations

import copy
import socket
import threading
import time
import uuid

import httpx

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.core import service
from proxy.server.settings import ProxyConfig
from tests.proxy.helpers import WEATHER_TOOL, body, toks
from tests.support.server_fixtures import TEST_DATE

ANSWER = toks("<|channel|>final<|message|>ok<|return|>")


def test_an_unauthenticated_client_is_refused_before_its_body_is_read(make_server):
    backend = ScriptedBackend(Script([ANSWER]))
    server = make_server(
        ProxyConfig(
            served_model_names=(backend.model_name,),
            conversation_date=TEST_DATE,
            api_keys=("sk-right",),
        ),
        backend,
    )
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        # Headers promise 8 MB that never come: the answer must not wait for them.
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer sk-wrong\r\nContent-Type: application/json\r\n"
            b"Content-Length: 8000000\r\n\r\n"
        )
        started = time.monotonic()
        reply = b""
        while chunk := sock.recv(65536):  # the server closes the connection after its answer
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
    assert b'"code":"invalid_api_key"' in reply.replace(b" ", b"")
    assert time.monotonic() - started < 5
    assert backend.requests == []
    # And the right key, as Bearer or as x-api-key (Anthropic's clients), is let through.
    for headers in ({"Authorization": "Bearer sk-right"}, {"x-api-key": "sk-right"}):
        reply = httpx.post(
            f"{server.url}/v1/chat/completions",
            json=body(server.model, "Hi"),
            headers=headers,
            timeout=30,
        )
        assert reply.status_code == 200, reply.text


def test_a_client_gone_during_planning_keeps_its_slot_until_the_plan_ends(make_server, monkeypatch):
    planning = threading.Event()
    release = threading.Event()
    real_plan = service.GenerationService.plan

    def slow_plan(self, request, abandoned):  # noqa: ANN001, ANN202
        # Only the first request declares tools; a new tool set is planned in the executor
        # (after an attempt on the loop that finds its schema check not cached).
        if request.tools and threading.current_thread().name.startswith("plan"):
            planning.set()
            release.wait(30)
        return real_plan(self, request, abandoned)

    monkeypatch.setattr(service.GenerationService, "plan", slow_plan)
    backend = ScriptedBackend(Script([ANSWER]))
    server = make_server(
        ProxyConfig(
            served_model_names=(backend.model_name,),
            conversation_date=TEST_DATE,
            max_concurrent_requests=1,
            max_queued_requests=0,
        ),
        backend,
    )

    def leave_while_planned() -> None:
        try:
            httpx.post(
                f"{server.url}/v1/chat/completions",
                json=body(server.model, "Weather?", tools=[new_tool]),
                timeout=httpx.Timeout(30, read=1.0),
            )
        except httpx.ReadTimeout:
            pass  # the client gives up: the connection closes

    # A tool set no earlier test sent: its schema check is not cached yet.
    new_tool = copy.deepcopy(WEATHER_TOOL)
    new_tool["function"]["description"] = f"Weather ({uuid.uuid4().hex})"
    new_tool["function"]["parameters"]["properties"]["unit"] = {
        "type": "string",
        "description": uuid.uuid4().hex,
    }
    leaver = threading.Thread(target=leave_while_planned)
    leaver.start()
    assert planning.wait(10)
    leaver.join()
    time.sleep(0.3)  # the server has seen the disconnect
    with httpx.Client(base_url=server.url, timeout=30) as client:
        busy = client.post("/v1/chat/completions", json=body(server.model, "Hi"))
        assert busy.status_code == 429, busy.text  # the abandoned plan still holds the slot
        release.set()
        deadline = time.monotonic() + 10
        while True:
            reply = client.post("/v1/chat/completions", json=body(server.model, "Hi"))
            if reply.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert reply.status_code == 200, reply.text
    # The abandoned request never reached the engine.
    assert len(backend.requests) == 1
