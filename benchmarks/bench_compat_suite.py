"""OpenAI's gpt-oss `compatibility-test` suite (the Agents SDK) against harmony-proxy and `vllm serve`.

The suite (vendored in benchmarks/compatibility_test/, see its NOTICE) runs 30 tool-calling cases
through the TypeScript Agents SDK, each on Chat Completions and on the Responses API, and checks
the API shape (a reasoning field, reasoning items with `reasoning_text` content) and that the
model called the case's tool with arguments matching its schema. On the tiny demo model the
pass count says little about the model; what this script measures is what the server makes of a
weak model: how long the suite takes, how much argument text the tool calls carry, how many calls
pad their JSON with whitespace, and how many completions run to the token cap.

Each system is started on the demo model (the engine settings of bench_side_by_side.py, niced
to 10 with everything this script starts), then the suite runs once with `-k` tries per case,
its SDK talking to the server through a recording relay that keeps every request and response
body (so the figures come from the bytes the SDK received, the same way for every system).

    python benchmarks/bench_compat_suite.py                        # harmony-proxy, k=1
    python benchmarks/bench_compat_suite.py --systems proxy,vllm   # then `vllm serve`, ratios
    python benchmarks/bench_compat_suite.py --cases 2              # a quick check: 2 cases

Needs `npm install` in benchmarks/compatibility_test/ (the npm registry only).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SUITE = ROOT / "benchmarks" / "compatibility_test"

from benchmarks.engine_processes import MODEL  # noqa: E402
from benchmarks.engine_systems import default_dtype, proxy_system, vllm_system  # noqa: E402

# A call "pads" its arguments when they hold a run of at least 8 spaces, tabs or newlines.
WHITESPACE_RUN = re.compile(r"[ \t\r\n]{8,}")
# The proxy's completion budget when a request sets none; `vllm serve` is given the same one.
TOKEN_CAP = 8192


# -- the recording relay ----------------------------------------------------------------------
@contextmanager
def recording_relay(upstream: str, record: Path) -> Iterator[str]:
    """A local HTTP relay to `upstream` that appends each exchange to `record` (JSON lines).

    Why: the suite keeps only the responses of the cases that finished; a case whose run threw
    (a malformed argument, a timeout) leaves nothing behind, yet its requests cost the most.
    """
    client = httpx.Client(base_url=upstream, timeout=httpx.Timeout(1800, connect=30))
    lock = threading.Lock()

    class Relay(BaseHTTPRequestHandler):
        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() in ("content-type", "authorization")
            }
            started = time.monotonic()
            try:
                answer = client.request(self.command, self.path, content=body, headers=headers)
                status, content = answer.status_code, answer.content
                kind = answer.headers.get("content-type", "application/json")
            except httpx.HTTPError as exc:
                status, content, kind = (
                    502,
                    json.dumps({"relay_error": repr(exc)}).encode(),
                    "application/json",
                )
            with lock, open(record, "a") as out:
                line = {
                    "path": self.path,
                    "status": status,
                    "seconds": round(time.monotonic() - started, 3),
                    "request": _json_or_text(body),
                    "response": _json_or_text(content),
                }
                out.write(json.dumps(line) + "\n")
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_DELETE = _relay

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the stdlib's name)
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        client.close()


def _json_or_text(data: bytes) -> object:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return data.decode("utf-8", "replace")


# -- one suite run ----------------------------------------------------------------------------
@dataclass
class SuiteRun:
    system: str
    seconds: float = 0.0
    timed_out: bool = False
    passed: dict[str, int] = field(default_factory=dict)
    ran: dict[str, int] = field(default_factory=dict)
    thrown: list[str] = field(default_factory=list)  # cases whose run raised, with the error
    failures: list[str] = field(default_factory=list)  # case, API and why it failed
    requests: int = 0
    errors: int = 0  # HTTP responses >= 400
    tool_calls: int = 0
    argument_chars: int = 0
    padded_calls: int = 0
    capped: int = 0
    unreasoned: int = 0  # completions with no reasoning (the suite's shape check needs one)
    completion_tokens: int = 0


def run_suite(name: str, url: str, args: argparse.Namespace, logs: Path) -> SuiteRun:
    """The suite against `url` (an OpenAI-style server), through the recording relay."""
    workdir = logs / name.replace(" ", "-")
    workdir.mkdir()
    record = workdir / "exchanges.jsonl"
    run = SuiteRun(name)
    command = [str(SUITE / "node_modules" / ".bin" / "tsx"), str(SUITE / "index.ts")]
    command += ["--provider", "local", "--cases", str(workdir / "cases.jsonl"), "-k", str(args.k)]
    cases = (SUITE / "cases.jsonl").read_text().splitlines()
    (workdir / "cases.jsonl").write_text("\n".join(cases[: args.cases]) + "\n")
    with recording_relay(url, record) as relay, open(workdir / "suite.log", "wb") as log:
        env = {
            **os.environ,
            "COMPAT_BASE_URL": relay + "/v1",
            "COMPAT_MODEL": MODEL,
            "COMPAT_API_TYPES": args.apis,
        }
        began = time.monotonic()
        suite = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            suite.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            run.timed_out = True
            os.killpg(suite.pid, signal.SIGKILL)
            suite.wait()
        run.seconds = time.monotonic() - began
    _read_rollout(run, workdir)
    if record.exists():
        _read_exchanges(run, record)
    print(f"  {name}: suite done in {run.seconds:.0f} s; logs {workdir}", flush=True)
    return run


def _read_rollout(run: SuiteRun, workdir: Path) -> None:
    """Pass counts per API and why each failure failed, from the suite's own rollout file."""
    for path in workdir.glob("rollout_*.jsonl"):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if "error" in row:
                run.thrown.append(f"case {row['test_case']}: {row['error'][:300]}")
                continue
            result = row["result"]
            api = result["apiType"]
            run.ran[api] = run.ran.get(api, 0) + 1
            run.passed[api] = run.passed.get(api, 0) + bool(row["success"])
            if not row["success"]:
                calls = result["toolCallingDetails"]
                if not result["validResponse"]:
                    why = f"API shape: {json.dumps(result['details'])}"
                elif not calls.get("calledToolAtLeastOnce"):
                    why = f"model: no call to {row['tool_name']}"
                else:
                    why = f"model: arguments off the schema: {calls.get('actualArguments')}"
                run.failures.append(f"case {row['test_case']} {api}: {why[:300]}")


def _read_exchanges(run: SuiteRun, record: Path) -> None:
    """Tool calls, their argument text, padded calls and capped completions, from the bytes."""
    for line in record.read_text().splitlines():
        exchange = json.loads(line)
        run.requests += 1
        response = exchange["response"]
        if exchange["status"] >= 400 or not isinstance(response, dict):
            run.errors += 1
            continue
        usage = response.get("usage") or {}
        run.completion_tokens += usage.get("completion_tokens") or usage.get("output_tokens") or 0
        if "choices" in response:  # Chat Completions
            choice = (response["choices"] or [{}])[0]
            run.capped += choice.get("finish_reason") == "length"
            calls = [c["function"]["arguments"] for c in choice["message"].get("tool_calls") or []]
            run.unreasoned += not choice["message"].get("reasoning")
        else:  # Responses
            reason = (response.get("incomplete_details") or {}).get("reason")
            run.capped += reason == "max_output_tokens"
            items = response.get("output") or []
            run.unreasoned += not any(i.get("type") == "reasoning" for i in items)
            calls = [i["arguments"] for i in items if i.get("type") == "function_call"]
        run.tool_calls += len(calls)
        run.argument_chars += sum(len(a) for a in calls)
        run.padded_calls += sum(bool(WHITESPACE_RUN.search(a)) for a in calls)


# -- report -----------------------------------------------------------------------------------
def print_run(run: SuiteRun, apis: list[str]) -> None:
    passes = ", ".join(f"{api} {run.passed.get(api, 0)}/{run.ran.get(api, 0)}" for api in apis)
    print(f"\n{run.system}: {run.seconds / 60:.1f} min{' (TIMED OUT)' if run.timed_out else ''}")
    print(f"  passed: {passes}; cases that threw: {len(run.thrown)}")
    print(
        f"  requests {run.requests} ({run.errors} answered >= 400), completion tokens {run.completion_tokens}"
    )
    print(
        f"  tool calls {run.tool_calls}, argument characters {run.argument_chars}, calls with "
        f"whitespace runs >= 8: {run.padded_calls}, completions at the token cap: {run.capped}, "
        f"completions without reasoning: {run.unreasoned}"
    )
    for line in run.thrown + run.failures:
        print(f"    {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", default="proxy", help="proxy, vllm or both (proxy,vllm)")
    parser.add_argument("--k", type=int, default=1, help="tries per case (the suite's -k)")
    parser.add_argument("--apis", default="chat,responses", help="the suite's API types")
    parser.add_argument("--cases", type=int, default=30, help="the first N cases only")
    parser.add_argument(
        "--timeout", type=float, default=2400, help="seconds per system's suite run"
    )
    parser.add_argument("--dtype", default=default_dtype())
    parser.add_argument("--max-model-len", type=int, default=16384)
    parser.add_argument("--max-num-seqs", type=int, default=16)
    args = parser.parse_args()
    if not (SUITE / "node_modules" / ".bin" / "tsx").exists():
        sys.exit(f"run `npm install` in {SUITE} first")
    os.nice(10)  # the servers and the suite inherit it: the machine is shared
    logs = Path(tempfile.mkdtemp(prefix="bench-compat-suite-"))
    apis = args.apis.split(",")
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; demo model, {args.dtype}, max_model_len "
        f"{args.max_model_len}, completion cap {TOKEN_CAP}; {args.cases} cases x k={args.k} x {apis}; "
        f"logs {logs}",
        flush=True,
    )
    starters = {
        "proxy": lambda: proxy_system(args, logs),
        "vllm": lambda: vllm_system(
            args,
            logs,
            extra_args=["--override-generation-config", json.dumps({"max_new_tokens": TOKEN_CAP})],
        ),
    }
    runs: list[SuiteRun] = []
    for name in args.systems.split(","):
        started = time.monotonic()
        try:
            with starters[name]() as system:
                print(f"  started {system.name} in {time.monotonic() - started:.0f} s", flush=True)
                runs.append(run_suite(system.name, system.url, args, logs))  # type: ignore[attr-defined]
        except RuntimeError as exc:
            print(f"  {name} did not start: {exc}", flush=True)
    for run in runs:
        print_run(run, apis)
    if len(runs) == 2:
        a, b = runs

        def ratio(x: float, y: float) -> str:
            return f"{x / y:.2f}x" if y else "-"

        print(f"\nsame run, {a.system} / {b.system}:")
        print(
            f"  wall time {ratio(a.seconds, b.seconds)}, argument characters "
            f"{ratio(a.argument_chars, b.argument_chars)}, completion tokens "
            f"{ratio(a.completion_tokens, b.completion_tokens)}, tool calls {ratio(a.tool_calls, b.tool_calls)}"
        )
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
