"""Model-output torture: an untrained random-weight model of the demo architecture, served by the
real engine through the real server, emits arbitrary tokens (special tokens, broken headers,
half messages) and the server must still answer every request well-formed.

Builds the random checkpoint (the demo checkpoint's config and tokenizer, every weight drawn at
random), starts `harmony-proxy serve --model <it>`, sends streamed requests cycling through no
tools, tools with tool_choice auto / required / named / none and response_format json_object,
plus non-streamed ones, and prints one table: every stream must end with a finish chunk and
`[DONE]`, every non-streamed answer must be valid JSON, no 5xx, no traceback in the log.

    python benchmarks/torture.py                  # 200 streamed + 50 non-streamed (~2-4 min)
    python benchmarks/torture.py --streams 40 --plain 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reliability import client_for, print_table, start_server, stream_once  # noqa: E402

from proxy.demo_model import default_cache_dir, ensure_demo_model  # noqa: E402

SERVED = "gpt-oss-random"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search.web",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    },
]
SHAPES = [
    {},
    {"tools": TOOLS},
    {"tools": TOOLS, "tool_choice": "auto"},
    {"tools": TOOLS, "tool_choice": "required"},
    {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
    {"tools": TOOLS, "tool_choice": "none"},
    {"response_format": {"type": "json_object"}},
]


def build_random_model(seed: int = 0) -> Path:
    """The demo architecture with random weights (cached next to the demo checkpoint)."""
    import torch
    from safetensors.torch import load_file, save_file

    demo = ensure_demo_model()
    target = default_cache_dir() / f"gpt-oss-random-{demo.name}-{seed}"
    if (target / "model.safetensors").exists():
        return target
    building = target.with_name(target.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    shutil.copytree(demo, building)
    generator = torch.Generator().manual_seed(seed)
    tensors = load_file(str(demo / "model.safetensors"))
    randomized = {}
    for name, tensor in tensors.items():
        scale = max(float(tensor.float().std()) if tensor.numel() > 1 else 0.0, 0.02)
        noise = torch.randn(tensor.shape, generator=generator) * scale
        randomized[name] = noise.to(tensor.dtype).contiguous()
    save_file(randomized, str(building / "model.safetensors"), metadata={"format": "pt"})
    building.rename(target)
    return target


def request(i: int, rng: random.Random, stream: bool) -> dict:
    body = {
        "model": SERVED,
        "messages": [{"role": "user", "content": rng.choice(["Hi", "Weather in Paris?", "2+2"])}],
        "max_tokens": rng.choice([8, 32, 64, 128, 256]),
        "temperature": rng.choice([0.0, 0.7, 1.0, 1.5]),
        "seed": i,
        "stream": stream,
        **SHAPES[i % len(SHAPES)],
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


async def plain_once(client: httpx.AsyncClient, body: dict) -> tuple[int, bool]:
    response = await client.post("/v1/chat/completions", json=body)
    try:
        data = response.json()
        valid = response.status_code == 200 and bool(data["choices"])
        valid = valid and all(c["finish_reason"] for c in data["choices"])
    except (ValueError, KeyError):
        valid = False
    return response.status_code, valid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--plain", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    model = build_random_model()
    server = start_server("--model", str(model), "--served-model-name", SERVED, name="torture")
    rng = random.Random(1)
    started = time.monotonic()

    async def run() -> tuple[list, list]:
        gate = asyncio.Semaphore(args.concurrency)
        async with client_for(server, args.concurrency) as client:

            async def one_stream(i: int):  # noqa: ANN202
                async with gate:
                    return await stream_once(client, request(i, rng, True))

            async def one_plain(i: int):  # noqa: ANN202
                async with gate:
                    return await plain_once(client, request(i, rng, False))

            streams = await asyncio.gather(*(one_stream(i) for i in range(args.streams)))
            plain = await asyncio.gather(*(one_plain(i) for i in range(args.plain)))
            return streams, plain

    try:
        streams, plain = asyncio.run(run())
        metrics = server.metrics()
    finally:
        code = server.stop()
    log = server.log_text()
    tracebacks = log.count("Traceback")
    bad_streams = [o for o in streams if not (o.status == 200 and o.done and o.finished)]
    five_xx = sum((o.status or 0) >= 500 for o in streams) + sum(s >= 500 for s, _ in plain)
    invalid_plain = sum(not valid for _, valid in plain)
    recoveries = metrics.get("harmony_proxy_parse_recoveries_total", 0)
    rows = [
        {
            "case": f"random-weight model: {args.streams} streamed + {args.plain} plain",
            "requests": len(streams) + len(plain),
            "failures": len(bad_streams) + invalid_plain + five_xx + tracebacks,
            "leaked": int(metrics.get("harmony_proxy_requests_in_flight", 0)),
            "rss_mib": "-",
            "note": f"{five_xx} 5xx, {invalid_plain} invalid JSON, {tracebacks} tracebacks, "
            f"{recoveries:.0f} parser recoveries, exit {code}, "
            f"{time.monotonic() - started:.0f} s",
        }
    ]
    for outcome in bad_streams[:5]:
        print("bad stream:", outcome.status, outcome.exception, outcome.events[-3:])
    print_table(rows)
    print(json.dumps({"finish_reasons": _finish_counts(streams)}))


def _finish_counts(streams: list) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in streams:
        for event in outcome.events:
            if event == "[DONE]":
                continue
            for choice in json.loads(event).get("choices") or []:
                if choice.get("finish_reason"):
                    counts[choice["finish_reason"]] = counts.get(choice["finish_reason"], 0) + 1
    return counts


if __name__ == "__main__":
    main()
