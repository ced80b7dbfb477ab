"""Adaptive merging on a paced engine: writes per token, CPU per token and ITL, merging off vs on.

The instant backend of bench_ceiling.py hands over one token at a time as fast as the proxy
asks, so nothing is ever backlogged and merging never starts. A real engine steps at its own
pace: every stream gets a token per step whether or not the proxy has written the last one,
and a proxy that falls behind finds several outputs waiting. This benchmark serves the same
realistic completions (tests/support/replay.py) from a *paced* scripted engine
(`scripted_serve --pace-ms M`: token k of each stream is due k·M ms after its request
started; tokens due by the time the proxy reads are handed over together, `more_ready`),
in up to four set-ups: `off`, with `--no-merge-ready-outputs` (one write per engine output, as
before issue 21); `ready`, the proxy merging only the outputs that are ready together (what the
remote path does with a replica's events; `--no-merge-when-behind`); `merged`, the default: that,
and while the serving loop runs late, each stream writing once per few late iterations
(proxy/core/loop_pressure.py); `collector`, the default with the engine itself handing the
tokens due as one output (`--pace-merged`: what vLLM's in-process output collector does for a
request that lags). The servers run at once and each level goes through them in turn, so all
see the same machine; ratios are to the first set-up.

Per level and set-up: streamed tokens/s; the server's CPU per token and **tokens per second
of server CPU** ("per core": tokens / CPU seconds, what one core would stream); SSE events per
token; the ITL a reader sees (p50/p99 of the gaps between reads that carried events; a merged
write is one read, so ITL grows as writes shrink) and the time to first byte. At low
concurrency the proxy keeps up, nothing is merged and both set-ups must show the same ITL; at
high concurrency merging trades writes for ITL that the backlog has already spent.

    python benchmarks/bench_paced.py                            # ~3 min on a 2-core host
    python benchmarks/bench_paced.py --pace-ms 5 --streams 1,16,256
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.ceiling_clients import MODEL  # noqa: E402
from benchmarks.ceiling_servers import Server, scripted_server, warm_up  # noqa: E402
from benchmarks.proc_cpu import cpu_seconds, process_tree  # noqa: E402
from benchmarks.raw_sse_client import RawConnection, RawResult  # noqa: E402
from tests.support.replay import chat_request  # noqa: E402


@dataclass
class Level:
    streams: int
    tokens: int
    events: int
    seconds: float
    server_cpu: float
    gaps: list[float]
    ttfb: list[float]
    complete: bool

    @property
    def per_core(self) -> float:
        """Streamed tokens per second of server CPU."""
        return self.tokens / max(1e-9, self.server_cpu)


def _client_proc(url: str, streams: int, requests: int, start_at: float) -> list[RawResult]:
    """`streams` raw keep-alive connections, each sending `requests` requests in turn (every
    other one with the weather tool: a call's arguments are streamed too)."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    host, _, port = url.removeprefix("http://").partition(":")
    bodies = [json.dumps(chat_request(MODEL, tools=t)).encode() for t in (False, True)]

    async def worker(n: int) -> list[RawResult]:
        connection = RawConnection(host, int(port))
        try:
            return [
                await connection.stream("/v1/chat/completions", bodies[(n + i) % 2])
                for i in range(requests)
            ]
        finally:
            await connection.close()

    async def main() -> list[RawResult]:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        runs = await asyncio.gather(*(worker(n) for n in range(streams)))
        return [r for rs in runs for r in rs]

    return asyncio.run(main())


def run_level(
    pool: concurrent.futures.Executor, server: Server, streams: int, requests: int, procs: int
) -> Level:
    procs = min(procs, streams)
    shares = [streams // procs + (1 if i < streams % procs else 0) for i in range(procs)]
    tree = process_tree(server.pid)
    start_at = time.time() + 0.3
    futures = [pool.submit(_client_proc, server.url, n, requests, start_at) for n in shares]
    time.sleep(max(0.0, start_at - time.time()))
    cpu0, began = cpu_seconds(tree), time.time()
    results = [r for f in futures for r in f.result()]
    seconds, cpu = time.time() - began, cpu_seconds(tree) - cpu0
    return Level(
        streams=streams,
        tokens=sum(r.tokens for r in results),
        events=sum(r.events for r in results),
        seconds=seconds,
        server_cpu=cpu,
        gaps=[g for r in results for g in r.gaps],
        ttfb=[r.ttfb for r in results],
        complete=all(r.done for r in results),
    )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def row(name: str, level: Level, base: Level | None) -> str:
    ratio = f"{level.per_core / base.per_core:5.2f}x" if base else "   - "
    itl = 1000 * statistics.median(level.gaps) if level.gaps else float("nan")
    rel = f"{itl / (1000 * statistics.median(base.gaps)):5.2f}x" if base and base.gaps else "   - "
    return (
        f"  {level.streams:>6} {name:<10} {level.tokens / level.seconds:>9,.0f} "
        f"{1000 * level.server_cpu / max(1, level.tokens):>8.4f} {level.per_core:>9,.0f} {ratio} "
        f"{level.events / max(1, level.tokens):>6.3f} {itl:>7.2f} {rel} "
        f"{1000 * _pct(level.gaps, 0.99):>7.2f} {1000 * statistics.median(level.ttfb):>7.1f}"
        f"{'' if level.complete else '  INCOMPLETE'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="1,4,16,64,256,1024")
    parser.add_argument("--pace-ms", type=float, default=10.0, help="engine step per stream")
    parser.add_argument("--tokens", type=int, default=256, help="tokens per completion")
    parser.add_argument(
        "--requests", type=int, default=3, help="requests per stream and level (1 at >= 1024)"
    )
    parser.add_argument("--client-procs", type=int, default=1)
    parser.add_argument(
        "--setups",
        default="off,ready,merged,collector",
        help="off (one write per engine output), ready (ready outputs merged by the proxy), "
        "merged (and fewer writes while the loop runs late: the default), collector (the "
        "default, the engine handing the due tokens over as one output, as vLLM's does)",
    )
    args = parser.parse_args()
    levels = [int(s) for s in args.streams.split(",")]
    print(
        f"host: {os.cpu_count()} cores; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; pace {args.pace_ms} ms per token "
        f"per stream; ~{args.tokens} tokens per completion; raw clients in "
        f"{args.client_procs} process(es)"
    )
    logs = Path(tempfile.mkdtemp(prefix="bench-paced-"))
    pace = ("--pace-ms", str(args.pace_ms))
    extra = {
        "off": (*pace, "--no-merge-ready-outputs"),
        "ready": (*pace, "--no-merge-when-behind"),
        "merged": pace,
        "collector": (*pace, "--pace-merged"),
    }
    setups = [s for s in args.setups.split(",") if s]
    context = multiprocessing.get_context("fork")
    out: dict[str, list[Level]] = {name: [] for name in setups}
    with (
        concurrent.futures.ProcessPoolExecutor(args.client_procs, mp_context=context) as pool,
        contextlib.ExitStack() as stack,
    ):
        servers = {
            name: stack.enter_context(
                scripted_server(args.tokens, logs, extra=extra[name], label=f", {name}")
            )
            for name in setups
        }
        for server in servers.values():
            warm_up(server.url)
        print(
            "  streams set-up     tokens/s  server  tok/s per  vs     events  ITL p50  vs    "
            "ITL p99   TTFB\n"
            "                              ms/tok  server core first  /token   ms    first "
            "    ms      p50 ms"
        )
        for streams in levels:
            requests = 1 if streams >= 1024 else args.requests
            base: Level | None = None
            for name, server in servers.items():
                level = run_level(pool, server, streams, requests, args.client_procs)
                out[name].append(level)
                print(row(name, level, base))
                base = base or level
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; logs: {logs}")
    summary = {
        name: [{k: v for k, v in vars(lv).items() if k not in ("gaps", "ttfb")} for lv in levels_]
        for name, levels_ in out.items()
    }
    (logs / "results.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
