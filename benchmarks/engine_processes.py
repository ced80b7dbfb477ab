"""The engine-side processes of benchmarks/bench_side_by_side.py: the bare driver and the HTTP floor.

Both load the demo checkpoint with the benchmark's engine settings (`VllmBackend`, the proxy's
own rendered prompts), each in a process of its own, started by the benchmark:

* `python benchmarks/engine_processes.py driver ...`: AsyncLLM driven directly, no HTTP; runs
  are asked on stdin and their results written to `--result-fd`;
* `python benchmarks/engine_processes.py http-floor --port N ...`: the engine behind a bare
  ASGI function under uvicorn that writes one fixed chat chunk per engine output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.floor_server import answer_ready, read_body  # noqa: E402

MODEL = "gpt-oss-demo"
DATE = "2026-01-15"
PROMPTS = [
    "What is 2 + 3?",
    "Hello! How are you today?",
    "Name three colours.",
    "What is the capital of France?",
    "Write a short greeting for a friend.",
    "What is 7 times 6?",
    "Tell me a fact about the sea.",
    "What day comes after Monday?",
    "Give me a word that rhymes with cat.",
    "How many legs does a spider have?",
    "What is the opposite of hot?",
    "Say something kind.",
]


def driver_main(argv: list[str]) -> None:
    """`engine_processes.py driver`: load the engine, then serve runs asked on stdin."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--max-num-seqs", type=int, default=128)
    parser.add_argument("--result-fd", type=int, required=True)
    args = parser.parse_args(argv)
    with os.fdopen(args.result_fd, "w") as out:
        asyncio.run(_driver(args, out))


def _engine_backend(args: argparse.Namespace, *, engine_stats: bool = False) -> Any:
    """`VllmBackend` on the demo checkpoint with the benchmark's engine settings."""
    from proxy.backends.vllm_engine import VllmBackend
    from proxy.backends.vllm_options import EngineOptions
    from proxy.demo_model import ensure_demo_model

    options = EngineOptions(
        model=str(ensure_demo_model(progress=lambda _: None)),
        served_model_name=MODEL,
        max_model_len=args.max_model_len,
        dtype=args.dtype,
        cpu_kvcache_space_gib=1,
        max_num_seqs=args.max_num_seqs,
        enable_prefix_caching=True,
        json_without_whitespace=True,
        engine_stats=engine_stats,
    )
    return VllmBackend(options, progress=lambda m: print(m, file=sys.stderr))


def _rendered_prompts() -> list[list[int]]:
    """PROMPTS as the proxy renders them (no tools, the benchmark's date)."""
    from proxy.api.chat_request import generation_request
    from proxy.api.chat_schema import ChatCompletionRequest
    from proxy.core.conversation import build_conversation, render_prompt, tool_names_for
    from proxy.server.settings import ProxyConfig

    config = ProxyConfig(conversation_date=DATE)
    prompts = []
    for text in PROMPTS:
        body = ChatCompletionRequest.model_validate(
            {"model": MODEL, "messages": [{"role": "user", "content": text}]}
        )
        prompts.append(
            render_prompt(
                build_conversation(
                    generation_request(body, "bench"),
                    config.service_settings().system,
                    tool_names_for(generation_request(body, "bench")),
                )
            )
        )
    return prompts


async def _driver(args: argparse.Namespace, out: object) -> None:
    backend = _engine_backend(args)
    await backend.start()
    prompts = _rendered_prompts()
    print("READY", file=out, flush=True)  # type: ignore[call-overload]
    loop = asyncio.get_running_loop()
    runs = 0
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line.strip():
            break
        clients, total, max_tokens = (int(x) for x in line.split())
        runs += 1
        result = await _drive(backend, prompts, clients, total, max_tokens, f"driver-{runs}")
        print(json.dumps(result), file=out, flush=True)  # type: ignore[call-overload]
    await backend.shutdown()


async def _drive(
    backend: Any, prompts: list[list[int]], clients: int, total: int, max_tokens: int, tag: str
) -> dict[str, Any]:
    """`total` requests over `clients` concurrent streams straight into AsyncLLM."""
    from proxy.backends.base import SamplingConfig
    from proxy.backends.vllm_engine import engine_prompt

    engine = backend._engine
    ttft: list[float] = []
    itl: list[float] = []
    tokens = 0
    counter = iter(range(total))

    async def one(i: int) -> None:
        nonlocal tokens
        params = backend.sampling_params(SamplingConfig(max_tokens=max_tokens, seed=i))
        started = time.perf_counter()
        last: float | None = None
        prompt = engine_prompt(prompts[i % len(prompts)])  # as VllmBackend passes it
        async for output in engine.generate(prompt, params, f"{tag}-{i}"):
            new = sum(len(c.token_ids) for c in output.outputs)
            if not new:
                continue
            tokens += new
            now = time.perf_counter()
            if last is None:
                ttft.append(now - started)
            else:
                itl.append(now - last)
            last = now

    async def worker() -> None:
        for i in counter:
            await one(i)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return {"tokens": tokens, "seconds": time.perf_counter() - began, "ttft": ttft, "itl": itl}


# -- the HTTP floor process -------------------------------------------------------------------
# One chat chunk the size of the proxy's (id, model, delta, logprobs, finish_reason), written
# as is for every engine output: what an SSE write costs, with nothing computed.
_FLOOR_CHUNK = (
    b'data: {"id":"chatcmpl-floor0000000000000000","object":"chat.completion.chunk",'
    b'"created":1768435200,"model":"gpt-oss-demo","choices":[{"index":0,"delta":'
    b'{"content":"word"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
)


def http_floor_main(argv: list[str]) -> None:
    """`engine_processes.py http-floor --port N`: the engine behind a bare ASGI function."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--max-num-seqs", type=int, default=128)
    args = parser.parse_args(argv)
    import uvicorn

    from proxy.server.lifecycle import freeze_startup_heap

    async def serve() -> None:
        backend = _engine_backend(args, engine_stats=True)
        await backend.start()
        by_text = dict(zip(PROMPTS, _rendered_prompts(), strict=True))
        freeze_startup_heap()  # as `serve` does once its engine is up
        app = _floor_app(backend, by_text)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=args.port, lifespan="off", access_log=False
        )
        await uvicorn.Server(config).serve()
        await backend.shutdown()

    asyncio.run(serve())


def _floor_app(backend: Any, prompts: dict[str, list[int]]) -> Any:
    from proxy.backends.base import SamplingConfig
    from proxy.backends.vllm_engine import engine_prompt

    ids = iter(range(10**9))
    headers = [(b"content-type", b"text/event-stream; charset=utf-8")]

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["path"] == "/ready":
            await answer_ready(send)
            return
        body = json.loads(await read_body(receive))
        prompt = engine_prompt(prompts[body["messages"][-1]["content"]])
        sampling = SamplingConfig(max_tokens=body["max_tokens"], seed=body.get("seed"))
        params = backend.sampling_params(sampling)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        tokens = 0
        async for output in backend._engine.generate(prompt, params, f"floor-{next(ids)}"):
            new = sum(len(c.token_ids) for c in output.outputs)
            if new:
                tokens += new
                await send({"type": "http.response.body", "body": _FLOOR_CHUNK, "more_body": True})
        usage = f'data: {{"choices":[],"usage":{{"completion_tokens":{tokens}}}}}\n\n'
        await send({"type": "http.response.body", "body": usage.encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    return app


def main() -> None:
    commands = {"driver": driver_main, "http-floor": http_floor_main}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(commands)}}} ...")
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
