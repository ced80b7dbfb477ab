"""The proxy's own ceiling: an instant backend, the real HTTP/SSE stack, real streaming clients.

Nothing here waits for a model. The server replays a realistic Harmony completion token by
token (tests/support/replay.py: reasoning then an answer, or reasoning then a
`functions.get_weather` call when the request declares the tool; `--tool-share` of the requests
do), so what is measured is what the proxy itself costs per streamed token: parsing, delta
assembly, chunk JSON, SSE framing, ASGI and uvicorn. Set-ups, each a real server process on
127.0.0.1:

* `scripted`: `python -m tests.support.scripted_serve --replay-tokens N`, the CLI's serving path
  (create_app + run_server) over the in-process `ScriptedBackend`: one process, one core;
* `floor`: `benchmarks/floor_server.py`, a bare ASGI function under the same uvicorn stack
  writing the very events the scripted server sent (captured from it in the same run), one
  `send` and one turn of the event loop each, with no proxy at all: what HTTP, the event loop
  and the socket writes alone cost per token, the part of the proxy's CPU no change to the
  proxy can remove;
* `remote`: `harmony-proxy serve --backend-url <fake> --workers P` in front of an instant fake
  vLLM replica (`python -m tests.remote.fake_replica`, its own process, one event per token):
  the real remote path, with 1 → P proxy processes (`--processes 1,2`).

Clients run in `--client-procs` processes of their own: httpx streaming clients (`--client
httpx`, the default: a real client), or `--client raw` (benchmarks/raw_sse_client.py), which
spends a third to a half of httpx's CPU per token and so leaves more of a small host's cores
to the servers. At each of `--streams` concurrent streams, each stream sends requests one after
the other until the level has streamed about `--level-tokens` tokens. Printed per level:
streamed completion tokens/s, the server's CPU per token and its CPU use in cores (utime +
stime from /proc/<pid>/stat, summed over the server's process tree), the clients' CPU per
token, and time to first byte. Then the TTFT the proxy adds at one stream: request sent → first
byte of the SSE body, with the instant backend, over `--ttft-requests` sequential requests.
On 127.0.0.1 a server's socket write also runs the receiving side of TCP and wakes the client
when it sleeps, so a server slower than its clients pays about 10 µs more per event (measured
here by slowing the floor server down): part of every server's CPU per token on loopback.

    python benchmarks/bench_ceiling.py                       # ~2 min on a 2-core host
    python benchmarks/bench_ceiling.py --setups scripted --streams 1,64 --profile /tmp/prof
    python benchmarks/bench_ceiling.py --setups scripted,floor --client raw --streams 1,16,64

`--profile DIR` records the server with py-spy (when installed) at the `--profile-streams`
level and prints the top functions by self time. CPU figures on a shared machine are noisy:
compare rows of the same run, and read the load average printed at the top.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import json
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.ceiling_clients import client_proc, measure_ttft  # noqa: E402
from benchmarks.ceiling_profile import profile_level  # noqa: E402
from benchmarks.ceiling_servers import (  # noqa: E402
    Server,
    capture_events,
    fake_replica,
    floor_server,
    remote_server,
    scripted_server,
    warm_up,
)
from benchmarks.proc_cpu import cpu_seconds, process_tree  # noqa: E402


@dataclass
class Level:
    streams: int
    requests: int
    tokens: int
    seconds: float
    server_cpu: float
    helper_cpu: float
    client_cpu: float
    ttfb_p50: float
    complete: bool
    retries: int = 0
    # With the raw client: SSE events seen, and the gaps between reads that carried events.
    events: int = 0
    gaps: list[float] = field(default_factory=list, repr=False)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    @property
    def server_ms_per_token(self) -> float:
        return 1000 * self.server_cpu / max(1, self.tokens)


def run_level(
    pool: concurrent.futures.Executor,
    args: argparse.Namespace,
    server: Server,
    streams: int,
    per_stream: int,
) -> Level:
    procs = min(args.client_procs, streams)
    shares = [streams // procs + (1 if i < streams % procs else 0) for i in range(procs)]
    tree = process_tree(server.pid)
    helper = [server.helper_pid] if server.helper_pid else []
    start_at = time.time() + 0.3
    futures = [
        pool.submit(client_proc, server.url, n, per_stream, args.tool_share, start_at, args.client)
        for n in shares
    ]
    time.sleep(max(0.0, start_at - time.time()))
    cpu0, helper0 = cpu_seconds(tree), cpu_seconds(helper)
    outs = [f.result() for f in futures]
    cpu1, helper1 = cpu_seconds(tree), cpu_seconds(helper)
    results = [r for out in outs for r in out[0]]
    began, ended = min(o[2] for o in outs), max(o[3] for o in outs)
    return Level(
        streams=streams,
        requests=len(results),
        tokens=sum(r.tokens for r in results),
        seconds=ended - began,
        server_cpu=cpu1 - cpu0,
        helper_cpu=helper1 - helper0,
        client_cpu=sum(o[1] for o in outs),
        ttfb_p50=statistics.median(r.ttfb for r in results),
        complete=all(r.done for r in results),
        retries=sum(r.retries for r in results),
        events=sum(getattr(r, "events", 0) for r in results),
        gaps=[g for r in results for g in getattr(r, "gaps", ())],
    )


# -- main -------------------------------------------------------------------------------------
def print_level(level: Level, base: Level | None) -> None:
    ratio = f"{level.tokens_per_s / base.tokens_per_s:5.2f}x" if base else "   - "
    helper = (
        f"{1000 * level.helper_cpu / max(1, level.tokens):7.3f}" if level.helper_cpu else "      -"
    )
    print(
        f"  {level.streams:>7} {level.requests:>6} {level.tokens_per_s:>10,.0f} {ratio} "
        f"{level.server_ms_per_token:>10.3f} {level.server_cpu / level.seconds:>6.2f} "
        f"{1000 * level.client_cpu / max(1, level.tokens):>9.3f} {helper} "
        f"{1000 * level.ttfb_p50:>9.1f} {_raw_columns(level)}"
        f"{'' if level.complete else '  INCOMPLETE'}"
        f"{f'  ({level.retries} retried)' if level.retries else ''}"
    )


def _raw_columns(level: Level) -> str:
    """Chunks per token and the ITL a reader sees (p50/p99 ms), measured by the raw client."""
    if not level.gaps:
        return "       -        -        -"
    gaps = sorted(level.gaps)
    p50, p99 = gaps[len(gaps) // 2], gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))]
    return f"{level.events / max(1, level.tokens):8.3f} {1000 * p50:8.2f} {1000 * p99:8.1f}"


def bench(
    pool: concurrent.futures.Executor, args: argparse.Namespace, server: Server, logs: Path
) -> list[Level]:
    per_request = warm_up(server.url)
    p50, p90 = measure_ttft(server.url, args.ttft_requests, args.client)
    print(
        f"\n{server.name}: ~{per_request} completion tokens per request; TTFT added at 1 stream "
        f"(sent → first SSE byte, instant backend, {args.client} client): p50 {1000 * p50:.2f} ms, "
        f"p90 {1000 * p90:.2f} ms"
    )
    print(
        "  streams   reqs   tokens/s  vs 1   server      server client    replica  TTFB p50"
        "   chunks  ITL p50  ITL p99\n"
        "                                   ms/token    cores ms/token  ms/token       ms"
        "  /token       ms       ms"
    )
    levels: list[Level] = []
    for streams in args.streams:
        per_stream = max(1, math.ceil(args.level_tokens / (streams * per_request)))
        if args.profile and streams == args.profile_streams:
            profile_level(
                server,
                functools.partial(run_level, pool, args, server, streams, per_stream),
                streams,
                args.profile,
                args.profile_top,
            )
        level = run_level(pool, args, server, streams, per_stream)
        print_level(level, levels[0] if levels else None)
        levels.append(level)
    return levels


def compare(pool: concurrent.futures.Executor, args: argparse.Namespace, logs: Path) -> None:
    """This checkout's scripted server against `--compare-root`'s, level by level, alternating
    `--rounds` times (A B, B A, ...), so both see the same machine: CPU per token and its
    ratio."""
    with (
        scripted_server(args.tokens, logs, root=args.compare_root) as other,
        scripted_server(args.tokens, logs) as this,
    ):
        per_request = warm_up(other.url)
        warm_up(this.url)
        ttft = {
            s.name: measure_ttft(s.url, args.ttft_requests, args.client)[0] for s in (other, this)
        }
        print(
            f"\nA: {other.name}\nB: {this.name} (this checkout); interleaved, {args.rounds} rounds"
        )
        print(
            f"  TTFT p50 at 1 stream: A {1000 * ttft[other.name]:.2f} ms, B {1000 * ttft[this.name]:.2f} ms"
        )
        print("  streams   A tok/s   B tok/s  A ms/token  B ms/token  B/A CPU per token")
        for streams in args.streams:
            per_stream = max(1, math.ceil(args.level_tokens / (streams * per_request)))
            cpu = {other.name: [0.0, 0], this.name: [0.0, 0]}
            rate = {other.name: [0.0, 0.0], this.name: [0.0, 0.0]}
            for round_ in range(args.rounds):
                # A B, then B A: neither set-up always runs on a machine the other warmed.
                for server in (other, this) if round_ % 2 == 0 else (this, other):
                    level = run_level(pool, args, server, streams, per_stream)
                    cpu[server.name][0] += level.server_cpu
                    cpu[server.name][1] += level.tokens
                    rate[server.name][0] += level.tokens
                    rate[server.name][1] += level.seconds
            a, b = (1000 * cpu[n][0] / max(1, cpu[n][1]) for n in (other.name, this.name))
            ta, tb = (rate[n][0] / rate[n][1] for n in (other.name, this.name))
            print(f"  {streams:>7} {ta:>9,.0f} {tb:>9,.0f} {a:>11.3f} {b:>11.3f} {b / a:>12.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--setups",
        default="scripted,floor,remote",
        help="scripted, floor (bare uvicorn replaying the scripted server's bytes), remote, "
        "remote-unmerged (remote with --no-merge-ready-outputs: one write per replica event), "
        "scripted-asyncio (the scripted server on asyncio + h11), and scripted-unmerged "
        "(--no-merge-ready-outputs: one write per engine output, no merging when behind)",
    )
    parser.add_argument("--streams", default="1,4,16,64,256", help="concurrent streams per level")
    parser.add_argument("--processes", default="1,2", help="proxy processes for `remote`")
    parser.add_argument("--tokens", type=int, default=256, help="tokens per replayed completion")
    parser.add_argument(
        "--level-tokens", type=int, default=20_000, help="tokens streamed per level"
    )
    parser.add_argument("--tool-share", type=float, default=0.5, help="share of tool-call requests")
    parser.add_argument("--client-procs", type=int, default=1, help="client processes")
    parser.add_argument(
        "--client",
        choices=("httpx", "raw"),
        default="httpx",
        help="httpx (a real streaming client) or raw (benchmarks/raw_sse_client.py: a fraction "
        "of the CPU per token, which leaves the cores to the server)",
    )
    parser.add_argument("--ttft-requests", type=int, default=40)
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the server, into DIR")
    parser.add_argument("--profile-streams", type=int, default=64)
    parser.add_argument("--profile-top", type=int, default=30)
    parser.add_argument(
        "--compare-root",
        type=Path,
        default=None,
        help="another checkout (e.g. a worktree of main with tests/support from this one): "
        "its scripted server against this one's, interleaved (only that comparison runs)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds for --compare-root")
    args = parser.parse_args()
    args.streams = [int(s) for s in args.streams.split(",")]
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    processes = [int(p) for p in args.processes.split(",")]

    print(
        f"host: {os.cpu_count()} cores; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"python {sys.version.split()[0]}; clients: {args.client} streaming in {args.client_procs} process(es)"
    )
    logs = Path(tempfile.mkdtemp(prefix="bench-ceiling-"))
    context = multiprocessing.get_context("fork")
    results: dict[str, list[Level]] = {}
    with concurrent.futures.ProcessPoolExecutor(args.client_procs, mp_context=context) as pool:
        if args.compare_root:
            compare(pool, args, logs)
            return
        if "scripted-unmerged" in setups:  # one write per engine output: merging off
            extra = ("--no-merge-ready-outputs",)
            with scripted_server(args.tokens, logs, extra=extra, label=", unmerged") as server:
                results[server.name] = bench(pool, args, server, logs)
        if "scripted-asyncio" in setups:
            with scripted_server(args.tokens, logs, "asyncio") as server:
                results[server.name] = bench(pool, args, server, logs)
        events: Path | None = None
        if "scripted" in setups or "floor" in setups:
            with scripted_server(args.tokens, logs) as server:
                if "floor" in setups:
                    events = capture_events(server.url, logs)
                if "scripted" in setups:
                    results[server.name] = bench(pool, args, server, logs)
        if events is not None:
            with floor_server(events, logs) as server:
                results[server.name] = bench(pool, args, server, logs)
        if "remote" in setups or "remote-unmerged" in setups:
            with fake_replica(args.tokens, logs) as replica:
                for workers in processes:
                    for merge in (False, True):
                        if "remote" + ("" if merge else "-unmerged") not in setups:
                            continue
                        with remote_server(replica, workers, logs, merge) as server:
                            results[server.name] = bench(pool, args, server, logs)
    names = list(results)
    if len(names) > 1:
        print("\nsame run, tokens/s and server CPU ms/token by set-up (ratios to the first):")
        for i, streams in enumerate(args.streams):
            first = results[names[0]][i]
            cells = "  ".join(
                f"{n}: {lv.tokens_per_s:,.0f} ({lv.tokens_per_s / first.tokens_per_s:.2f}x), "
                f"{lv.server_ms_per_token:.3f} ms "
                f"({lv.server_ms_per_token / first.server_ms_per_token:.2f}x)"
                for n, lv in ((n, results[n][i]) for n in names)
            )
            print(f"  {streams:>4} streams  {cells}")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; logs: {logs}")
    print(
        json.dumps(
            {
                n: [{k: v for k, v in vars(lv).items() if k != "gaps"} for lv in levels]
                for n, levels in results.items()
            }
        ),
        file=open(logs / "results.json", "w"),
    )


if __name__ == "__main__":
    main()
