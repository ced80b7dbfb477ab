"""The remote path writes what a replica's read brought: many lines in one block, one chunk.

A fake vLLM replica (the real HTTP API of tests/remote/fake_replica.py, with its generate
endpoint replaced) writes its token events either in bursts (many `data:` lines in one socket
write, what a replica ahead of a busy proxy looks like from the proxy's side) or one line at a
time with a pause (an idle proxy). The proxy is the real app under uvicorn; clients are raw
HTTP. Merged or not, the joined text and arguments must be those of the one-by-one stream.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from proxy.backends.pool import ReplicaPool
from proxy.backends.scripted import Script
from proxy.core.coalesce import StreamInterval
from proxy.server.settings import ProxyConfig
from tests.proxy.helpers import delta_chunks, joined_stream, stream_chunks
from tests.remote.fake_replica import FakeBehaviour, fake_replica_app
from tests.support.replay import WEATHER_TOOL, completion_for
from tests.support.server_fixtures import TEST_DATE, RunningServer


@dataclass
class Pacing:
    burst: int = 1  # events per socket write
    pause: float = 0.0  # seconds between writes


def _frame(token: int, last: bool) -> str:
    choice = {
        "index": 0,
        "token_ids": [token],
        "finish_reason": "stop" if last else None,
        "stop_reason": token if last else None,
    }
    return f"data: {json.dumps({'choices': [choice]})}\n\n"


def paced_replica(pacing: Pacing) -> FastAPI:
    """The fake replica's app, its generate endpoint streaming a replayed completion paced."""
    app = FastAPI()

    @app.post("/inference/v1/generate")
    async def generate(request: Request) -> Response:
        body = await request.json()
        if "token_ids" not in body:  # the proxy's protocol probe
            return JSONResponse({"error": {"message": "token_ids: Field required"}}, 400)
        prompt = body["token_ids"]
        tokens = completion_for(prompt, 96)

        async def stream() -> AsyncIterator[str]:
            frames = [_frame(t, i == len(tokens) - 1) for i, t in enumerate(tokens)]
            usage = {"prompt_tokens": len(prompt), "completion_tokens": len(tokens)}
            frames.append(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n")
            frames.append("data: [DONE]\n\n")
            for start in range(0, len(frames), pacing.burst):
                yield "".join(frames[start : start + pacing.burst])
                await asyncio.sleep(pacing.pause)

        return StreamingResponse(stream(), media_type="text/event-stream")

    app.router.routes.extend(fake_replica_app(FakeBehaviour()).router.routes)
    return app


@pytest.fixture
def replica(background_loop) -> Iterator[tuple[str, Pacing]]:
    pacing = Pacing()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(paced_replica(pacing), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)

    async def start() -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        return task

    task = background_loop.run(start())
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", pacing
    server.should_exit = True
    background_loop.run(asyncio.wait_for(task, timeout=15))


@pytest.fixture
def proxy(make_server, background_loop, replica) -> Iterator[RunningServer]:
    pool = ReplicaPool([replica[0]], health_interval=5.0)
    # (Chunk counts are asserted: the loop's backlog floor off, as a shared test loop may stall.)
    config = ProxyConfig(
        conversation_date=TEST_DATE, stream_interval=StreamInterval(when_behind=False)
    )
    yield make_server(config, pool)
    background_loop.run(pool.shutdown())


def _chat(server: RunningServer, **fields: Any) -> list[dict[str, Any]]:
    payload: dict[str, Any] = {
        "model": "gpt-oss-demo",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "stream_options": {"include_usage": True},
        **fields,
    }
    with httpx.Client(timeout=60) as client:
        return stream_chunks(client, f"{server.base_url}/chat/completions", payload)


@pytest.mark.parametrize("tools", [None, [WEATHER_TOOL]], ids=["answer", "tool-call"])
def test_a_replicas_burst_is_written_merged_with_the_same_text(
    proxy: RunningServer, replica: tuple[str, Pacing], tools: list | None
) -> None:
    extra = {"tools": tools} if tools else {}
    pacing = replica[1]
    pacing.burst, pacing.pause = 1, 0.01
    one_by_one = _chat(proxy, **extra)
    pacing.burst, pacing.pause = 40, 0.01
    merged = _chat(proxy, **extra)
    joined = joined_stream(merged)
    assert joined == joined_stream(one_by_one)
    assert len(joined["choices"][0]["finish"]) == 1 and len(joined["usage"]) == 1
    assert delta_chunks(merged) <= delta_chunks(one_by_one) // 4
    if tools:
        assert joined["choices"][0]["calls"][0]["name"] == "get_weather"


def test_an_idle_proxy_writes_every_replica_event_as_its_own_chunk(
    proxy: RunningServer, replica: tuple[str, Pacing], make_server
) -> None:
    """One line per write, paced: as many chunks as a scripted engine handing over one token
    at a time gives for the same completion (one step per engine output), and the same text."""
    pacing = replica[1]
    pacing.burst, pacing.pause = 1, 0.01
    remote = _chat(proxy)
    tokens = list(completion_for([], 96))  # (the replayed answer does not depend on the prompt)
    scripted = make_server(
        ProxyConfig(
            served_model_names=("scripted-gpt-oss",),
            conversation_date=TEST_DATE,
            stream_interval=StreamInterval(when_behind=False),
        )
    )
    scripted.backend.script = Script(choices=[tokens])
    local = _chat(scripted, model=scripted.backend.model_name)
    remote_text, local_text = (joined_stream(c)["choices"][0] for c in (remote, local))
    assert remote_text["reasoning"] == local_text["reasoning"]
    assert remote_text["content"] == local_text["content"]
    assert delta_chunks(remote) == delta_chunks(local)
