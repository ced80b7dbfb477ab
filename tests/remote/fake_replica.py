"""A scripted stand-in for a vLLM server's HTTP API, for failures real replicas won't show on cue.

It speaks the same endpoints as `vllm serve` (/v1/models, /tokenize, /health,
/inference/v1/generate + abort, /v1/completions) and streams a fixed Harmony answer as token ids,
but can be told to have another vocabulary, no tokenizer, no generate endpoint, or to answer
400/429/503. It runs as a real uvicorn server on 127.0.0.1.

`replay_tokens` makes it an instant replica of a realistic completion (`tests/support/replay.py`:
reasoning then an answer, or a tool call when the prompt declares functions), one token per
event with the events pre-encoded, so it costs little CPU next to the proxy it feeds;
`python -m tests.remote.fake_replica --port N --replay-tokens 256` runs one as its own process
(benchmarks/bench_ceiling.py, the `--workers` test).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp

from proxy.backends.remote import VOCAB_PROBE_TEXT, expected_probe_ids
from proxy.core.conversation import load_encoding
from tests.support.replay import completion_for


@dataclass
class FakeBehaviour:
    vocabulary: str = "ok"  # "ok" | "wrong" | "none" (no tokenizer)
    generate_endpoint: bool = True
    status: int = 200  # answer requests with this status (400/429/503) instead of streaming
    message: str = "fake failure"
    retry_after: str | None = None
    answer: str = "Hi from the fake replica."
    cached_tokens: int = 0
    replay_tokens: int = 0  # > 0: replay a realistic completion of about this many tokens
    requests: list[dict[str, Any]] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)


def answer_tokens(text: str) -> list[int]:
    return load_encoding().encode(
        f"<|channel|>final<|message|>{text}<|return|>", allowed_special="all"
    )


def fake_replica_app(behaviour: FakeBehaviour) -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=200)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "gpt-oss-demo", "max_model_len": 2048}]}

    @app.post("/tokenize")
    async def tokenize(request: Request) -> Response:
        body = await request.json()
        if behaviour.vocabulary == "none":
            return JSONResponse({"error": {"message": "Unable to get tokenizer"}}, 404)
        assert body["prompt"] == VOCAB_PROBE_TEXT
        tokens = expected_probe_ids()
        if behaviour.vocabulary == "wrong":
            tokens = [t + 1 for t in tokens]
        return JSONResponse({"count": len(tokens), "tokens": tokens})

    def refusal() -> Response | None:
        if behaviour.status == 200:
            return None
        headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after else None
        error = {"message": behaviour.message, "type": "Error", "code": behaviour.status}
        return JSONResponse({"error": error}, behaviour.status, headers=headers)

    async def stream(body: dict[str, Any], completions: bool) -> AsyncIterator[str]:
        if behaviour.replay_tokens:
            prompt = body.get("token_ids") or body.get("prompt") or []
            tokens = completion_for(prompt, behaviour.replay_tokens)
            for frame in _frames(tokens, completions):
                yield frame
                await asyncio.sleep(0)
            usage = {"prompt_tokens": len(prompt), "completion_tokens": len(tokens)}
            yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"
            return
        tokens = answer_tokens(behaviour.answer)
        for frame in _frames(tuple(tokens), completions):
            yield frame
            await asyncio.sleep(0)
        usage = {
            "prompt_tokens": len(body.get("token_ids") or body.get("prompt") or []),
            "completion_tokens": len(tokens),
            "prompt_tokens_details": {"cached_tokens": behaviour.cached_tokens},
        }
        yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"

    @app.post("/inference/v1/generate")
    async def generate(request: Request) -> Response:
        if not behaviour.generate_endpoint:
            return JSONResponse({"detail": "Not Found"}, 404)
        body = await request.json()
        if "token_ids" not in body:
            return JSONResponse({"error": {"message": "token_ids: Field required"}}, 400)
        if not behaviour.replay_tokens:  # a load run keeps no records
            behaviour.requests.append(body)
        return refusal() or StreamingResponse(stream(body, False), media_type="text/event-stream")

    @app.post("/inference/v1/abort_requests")
    async def abort(request: Request) -> Response:
        behaviour.aborted.extend((await request.json())["request_ids"])
        return Response(status_code=200)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body = await request.json()
        if not behaviour.replay_tokens:  # a load run keeps no records
            behaviour.requests.append(body)
        return refusal() or StreamingResponse(stream(body, True), media_type="text/event-stream")

    return app


@functools.lru_cache(maxsize=8)
def _frames(tokens: tuple[int, ...], completions: bool) -> list[str]:
    """One SSE event per token, shaped like the replica's, built once per completion."""
    out = []
    for i, token in enumerate(tokens):
        last = i == len(tokens) - 1
        choice: dict[str, Any] = {
            "index": 0,
            "token_ids": [token],
            "finish_reason": "stop" if last else None,
            "stop_reason": token if last else None,
        }
        if completions:
            choice["text"] = "x"
        out.append(f"data: {json.dumps({'choices': [choice]})}\n\n")
    return out


@dataclass
class FakeReplica:
    behaviour: FakeBehaviour
    url: str
    server: uvicorn.Server
    task: asyncio.Task[None]


async def start_fake(
    behaviour: FakeBehaviour, wrap: Callable[[ASGIApp], ASGIApp] | None = None
) -> FakeReplica:
    """A fake replica on a free port; `wrap` puts middleware around it (e.g. vLLM's own
    `--api-key` check)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app: ASGIApp = fake_replica_app(behaviour)
    if wrap is not None:
        app = wrap(app)
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return FakeReplica(behaviour, f"http://127.0.0.1:{port}", server, task)


async def stop_fake(fake: FakeReplica) -> None:
    fake.server.should_exit = True
    await asyncio.wait_for(fake.task, timeout=15)


def main() -> None:
    """Serve one fake replica in this process until interrupted."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--replay-tokens", type=int, default=256)
    args = parser.parse_args()
    load_encoding()
    behaviour = FakeBehaviour(replay_tokens=args.replay_tokens)
    uvicorn.run(
        fake_replica_app(behaviour),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        lifespan="off",
    )


if __name__ == "__main__":
    main()
