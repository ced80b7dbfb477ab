"""Hostile requests against a real server process: cheap refusals, no stalled loop, bounded memory.

Each attack class of issue 17 is sent to `tests/support/scripted_serve.py` (the CLI's serving
path, uvicorn and all, in its own process; the scripted engine replays realistic completions,
so what is measured is the proxy's own work) while a second client samples `/health`. The
targets: every attack is a clear 4xx or is served, never a 5xx; the server's event loop never
wakes more than 50 ms late while it runs (counted from the loop-lateness histogram on
`/metrics`) and `/health` answers within 100 ms; a refusal costs the server under 50 ms of CPU;
and memory returns to its level after many unique tool sets.

Timing on a shared 2-core machine has noise that is not the server's (another process holding
both cores for a moment): an attack that misses a timing target is sent again, up to three
times in all, and the best of its runs is what must meet the target. A real stall is the
server's own work and shows on every run.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
import pytest

from proxy.core.gate import Limits, check_request
from proxy.core.planning import INLINE_PAST_CALLS, INLINE_RENDER_CHARS, plans_quickly
from tests.proxy.helpers import neutral

HEALTH_TARGET = 0.100
LAG_TARGET = 0.050
REFUSAL_CPU_TARGET = 0.050
# The server's CPU over a run includes its /health answers and the loop monitor's wake-ups, and
# is counted in 10 ms clock ticks: below this a run needs no retry for its CPU figure.
CPU_NOISE = 0.030


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Attack:
    """One run of an attack, as the server lived it."""

    response: httpx.Response
    slowest: float  # the slowest /health answer meanwhile
    late: dict[str, float]  # the loop's wake-ups later than each histogram bound meanwhile
    cpu: float  # the server's CPU seconds meanwhile

    def late_past(self, seconds: float) -> float:
        """Wake-ups later than `seconds` (the smallest histogram bound at or above it)."""
        bound = min((b for b in self.late if float(b) >= seconds), key=float)
        return self.late[bound]

    def rank(self) -> tuple[float, float, float]:
        return (self.late_past(LAG_TARGET), self.slowest, self.cpu)


class Server:
    def __init__(self, url: str, process: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.process = process
        self.ps = psutil.Process(process.pid)
        self.client = httpx.Client(base_url=url, timeout=120)
        self.model = self.client.get("/v1/models").json()["data"][0]["id"]

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def loop_lag(self) -> float:
        for line in self.client.get("/metrics").text.splitlines():
            if line.startswith("harmony_proxy_event_loop_lag_seconds "):
                return float(line.split()[1])
        raise AssertionError("no loop-lag gauge on /metrics")

    def late_wakeups(self) -> dict[str, float]:
        """How many of the loop monitor's wake-ups so far came later than each bucket's bound
        (`{"0.05": n, "0.1": m, ...}`)."""
        total, within = 0.0, {}
        prefix = 'harmony_proxy_event_loop_lateness_seconds_bucket{le="'
        for line in self.client.get("/metrics").text.splitlines():
            if line.startswith("harmony_proxy_event_loop_lateness_seconds_count "):
                total = float(line.split()[1])
            elif line.startswith(prefix):
                within[line[len(prefix) :].split('"')[0]] = float(line.split()[1])
        return {bound: total - count for bound, count in within.items()}

    def attack(self, send: Callable[[httpx.Client], httpx.Response]) -> Attack:
        """`send`'s response, the slowest /health answer while it ran, the loop's late
        wake-ups and the server's CPU meanwhile; sent again (see the module docstring) while a
        target is missed, keeping the best run."""
        best: Attack | None = None
        for _ in range(3):
            run = self._attack_once(send)
            if best is None or run.rank() < best.rank():
                best = run
            if best.rank() < (1, HEALTH_TARGET, CPU_NOISE):
                break
        assert best is not None
        return best

    def _attack_once(self, send: Callable[[httpx.Client], httpx.Response]) -> Attack:
        done = threading.Event()
        slowest = [0.0]

        def probe() -> None:
            with httpx.Client(base_url=self.url, timeout=30) as health:
                while not done.is_set():
                    started = time.perf_counter()
                    assert health.get("/health").status_code == 200
                    slowest[0] = max(slowest[0], time.perf_counter() - started)
                    time.sleep(0.02)

        late_before = self.late_wakeups()
        cpu_before = self.cpu()
        prober = threading.Thread(target=probe)
        prober.start()
        try:
            response = send(self.client)
        finally:
            done.set()
            prober.join()
        cpu = self.cpu() - cpu_before
        assert response.status_code < 500, response.text[:500]
        late_after = self.late_wakeups()
        late = {bound: late_after[bound] - late_before.get(bound, 0) for bound in late_after}
        return Attack(response, slowest[0], late, cpu)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.scripted_serve", "--port", str(port)]
        + ["--replay-tokens", "400"]
        # The loop monitor at a fixed 20 ms (it relaxes to 100 ms while the loop is on time,
        # where a lone stall under 150 ms could show less than 50 ms late).
        + ["--loop-lag-relaxed", "0.02"],
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "server did not start"
        time.sleep(0.2)
    running = Server(url, process)
    # Steady state first: the first requests pay one-time costs (lazy imports, the first
    # large allocations) that no later request does.
    for size in (10, 200_000):
        running.client.post(
            "/v1/chat/completions",
            json={"model": running.model, "messages": [{"role": "user", "content": "x" * size}]},
        )
    try:
        yield running
    finally:
        running.client.close()
        process.terminate()
        process.wait(30)


def chat(server: Server, **fields: Any) -> Callable[[httpx.Client], httpx.Response]:
    payload = {"model": server.model, "messages": [{"role": "user", "content": "Hi"}], **fields}
    data = json.dumps(payload).encode()
    return lambda client: client.post(
        "/v1/chat/completions", content=data, headers={"content-type": "application/json"}
    )


def wide_schema(properties: int, tag: str = "") -> dict[str, Any]:
    """An object schema of `properties` described string fields (about 60 bytes each)."""
    return {
        "type": "object",
        "properties": {
            f"field_{tag}{i}": {"type": "string", "description": f"value number {i} {tag}"}
            for i in range(properties)
        },
    }


def nested_schema(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


def refused(server: Server, send: Callable[[httpx.Client], httpx.Response]) -> dict[str, Any]:
    """The refusal's error, checked to be a 400/413 that cost little CPU and stalled nothing."""
    return refusal(server, send)["error"]


def refusal(server: Server, send: Callable[[httpx.Client], httpx.Response]) -> dict[str, Any]:
    """The refusal's whole body (each API's own error shape), checked as `refused` says."""
    run = server.attack(send)
    response, spent = run.response, run.cpu
    assert response.status_code in (400, 413), response.text[:300]
    parsing = _parse_allowance(len(response.request.content))
    assert_no_stall(run, parsing)
    allowed = REFUSAL_CPU_TARGET + parsing
    assert spent < allowed, f"refusal cost {spent * 1000:.0f} ms of CPU (allowed {allowed:.3f} s)"
    return response.json()


def _parse_allowance(body_bytes: int) -> float:
    """Parsing the JSON body is the one cost that grows with it before any check can run:
    orjson took 12-23 ms per MB of small objects on these machines (35-68 ms for the 2.9 MB
    body of 120,000 schema objects), on the loop and holding the GIL, so no thread or
    process can take it off. It is allowed on top of the targets, for refusals only."""
    return 0.025 * body_bytes / 2**20


def served(server: Server, send: Callable[[httpx.Client], httpx.Response]) -> httpx.Response:
    run = server.attack(send)
    assert run.response.status_code == 200, run.response.text[:300]
    assert_no_stall(run)
    return run.response


def assert_no_stall(run: Attack, parsing: float = 0.0) -> None:
    """No wake-up later than the lag target (plus `parsing`: the body's JSON parse, which
    no server can split), and /health within its target."""
    lag = LAG_TARGET + parsing
    late = run.late_past(lag)
    assert late == 0, f"the event loop woke more than {lag * 1000:.0f} ms late {late:g}x"
    slowest = run.slowest
    assert slowest < HEALTH_TARGET + parsing, f"/health took {slowest * 1000:.0f} ms"


def answered(server: Server, send: Callable[[httpx.Client], httpx.Response]) -> httpx.Response:
    """Served, or refused only because the prompt does not fit the context."""
    run = server.attack(send)
    response = run.response
    if response.status_code != 200:
        assert response.json()["error"]["code"] == "context_length_exceeded", response.text[:300]
    assert_no_stall(run)
    return response


def test_a_huge_tool_schema_is_refused_cheaply(server):
    # 2.5 MB of schema, under the 8 MB body limit: the gate refuses it before any validation.
    tool = {"type": "function", "function": {"name": "f", "parameters": wide_schema(40_000)}}
    error = refused(server, chat(server, tools=[tool]))
    assert error["param"] == "tools" and "1048576 bytes" in error["message"]


def test_a_large_legal_tool_schema_is_served_without_stalling_the_loop(server):
    tool = {"type": "function", "function": {"name": "f", "parameters": wide_schema(8_000)}}
    answered(server, chat(server, tools=[tool]))  # 500 kB: checked off the loop, then too long
    tool = {"type": "function", "function": {"name": "f", "parameters": wide_schema(300)}}
    served(server, chat(server, tools=[tool]))


def test_unique_large_tool_sets_do_not_grow_memory_without_bound(server):
    def tool_set(n: int) -> list[dict[str, Any]]:
        return [
            {
                "type": "function",
                "function": {"name": f"f{j}", "parameters": wide_schema(500, f"{n}_{j}_")},
            }
            for j in range(4)
        ]

    # Each set is checked and cached, then too long for the scripted engine's 8k context: the
    # caches hold what the schema checks and grammars keep, whatever the answer.
    answered(server, chat(server, tools=tool_set(-1)))  # warm: first-use allocations
    before = server.rss()
    for n in range(50):
        answered(server, chat(server, tools=tool_set(n)))
    grown = server.rss() - before
    print(f"RSS {before / 2**20:.0f} MiB -> {server.rss() / 2**20:.0f} MiB after 50 tool sets")
    assert grown < 96 * 2**20, f"RSS grew {grown / 2**20:.0f} MiB over 50 unique tool sets"


def _colliding_name(i: int) -> str:
    """The i-th of many names that all become the identifier `a________` for the model."""
    marks = "-./:@"
    suffix = ""
    for _ in range(8):
        i, digit = divmod(i, len(marks))
        suffix += marks[digit]
    return "a" + suffix


def _past_calls(count: int) -> list[dict[str, Any]]:
    calls = [
        {
            "id": f"c{i}",
            "type": "function",
            "function": {"name": _colliding_name(i), "arguments": "{}"},
        }
        for i in range(count)
    ]
    return [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c0", "content": "ok"},
    ]


def test_too_many_past_tool_calls_are_refused_cheaply(server):
    error = refused(server, chat(server, messages=_past_calls(20_000)))
    assert error["param"] == "messages" and "4096" in error["message"]


def test_colliding_tool_names_cost_linear_time(server):
    answered(server, chat(server, messages=_past_calls(4_000)))


def test_a_burst_at_the_on_loop_planning_budget_does_not_stall(server):
    """The largest requests planned on the event loop itself (proxy/core/planning.py): a text
    right under the budget that is a token every other character, and the most past calls,
    twenty of each back to back, all served with no wake-up late past the target."""
    text = "x " * ((INLINE_RENDER_CHARS - 200) // 2)
    conversations = [[{"role": "user", "content": text}], _past_calls(INLINE_PAST_CALLS)]
    for messages in conversations:  # (both within the budget: planned on the loop)
        request = neutral({"model": "m", "messages": messages})
        assert plans_quickly(request, check_request(request, Limits()))
    requests = [chat(server, messages=messages, max_tokens=1) for messages in conversations]

    def burst(client: httpx.Client) -> httpx.Response:
        for _ in range(20):
            for send in requests:
                response = send(client)
                assert response.status_code == 200, response.text[:300]
        return response

    served(server, burst)


def test_long_stop_strings_are_refused_and_legal_ones_do_not_stall(server):
    error = refused(server, chat(server, stop=["x" * 1_000_000] * 4))
    assert error["param"] == "stop[0]"
    served(server, chat(server, stop=["ab" * 512, "ba" * 512, "a" * 1024, "b" * 1024]))


@pytest.mark.parametrize("depth", [100, 400, 100_000])
def test_deep_schemas_are_400s_on_responses(server, depth):
    nested = '{"type":"object","properties":{"x":' * depth + '{"type":"object"}' + "}}" * depth
    tool = f'{{"type":"function","name":"f","parameters":{nested}}}'
    payload = f'{{"model":"{server.model}","input":"Hi","tools":[{tool}]}}'
    error = refused(
        server,
        lambda client: client.post(
            "/v1/responses", content=payload, headers={"content-type": "application/json"}
        ),
    )
    # Past the depth the JSON parsers read, the body itself is refused.
    assert error["param"] == ("tools[0].parameters" if depth <= 400 else None)


def test_huge_lists_are_counted_before_models_are_built(server):
    # A million stop strings or 200,000 content blocks: refused on their counts, before
    # pydantic builds a model or a string per item.
    error = refused(server, chat(server, stop=["x"] * 1_000_000))
    assert error["param"] == "stop"
    blocks = [{"type": "text", "text": "x"}] * 200_000
    payload = json.dumps(
        {
            "model": server.model,
            "max_tokens": 16,
            "messages": [{"role": "user", "content": blocks}],
            "system": [{"type": "text", "text": "x"}] * 10,
        }
    )
    body = refusal(
        server,
        lambda client: client.post(
            "/v1/messages", content=payload, headers={"content-type": "application/json"}
        ),
    )
    assert body["type"] == "error" and body["error"]["message"].startswith("messages"), body


def test_metadata_follows_openais_limits(server):
    error = refused(server, chat(server, metadata={f"k{i}": "v" for i in range(17)}))
    assert error["param"] == "metadata"
    error = refused(server, chat(server, metadata={"k": "v" * 513}))
    assert error["param"] == "metadata.k"


def test_the_loop_lag_gauge_shows_the_recent_maximum(server):
    """Last in this module: the gauge holds the largest lateness of the last 15 s."""
    served(server, chat(server))
    lag = server.loop_lag()
    print(f"loop lag gauge after the attacks: {lag * 1000:.1f} ms")
    assert 0 < lag < 1.0


# -- the shapes issue 18 added: conversations, hosted tools, approvals, background resume ------


def post(path: str, payload: dict[str, Any]) -> Callable[[httpx.Client], httpx.Response]:
    data = json.dumps(payload).encode()
    return lambda client: client.post(
        path, content=data, headers={"content-type": "application/json"}
    )


def test_a_conversation_of_a_hundred_thousand_items_is_refused_cheaply(server):
    items = [{"type": "message", "role": "user", "content": "x"}] * 100_000
    error = refused(server, post("/v1/conversations", {"items": items}))
    assert error["param"] == "items"


def test_thousands_of_mcp_tools_and_approvals_are_refused_cheaply(server):
    mcp = {"type": "mcp", "server_label": "s", "server_url": "http://10.0.0.1/mcp"}
    error = refused(
        server,
        post("/v1/responses", {"model": server.model, "input": "Hi", "tools": [mcp] * 5_000}),
    )
    assert error["param"] == "tools"
    approvals = [
        {"type": "mcp_approval_response", "approval_request_id": f"mcpr_{i}", "approve": True}
        for i in range(50_000)
    ]
    error = refused(server, post("/v1/responses", {"model": server.model, "input": approvals}))
    assert error["param"] == "input"


def test_a_megabyte_conversation_id_is_refused_cheaply(server):
    body = {"model": server.model, "input": "Hi", "conversation": "conv_" + "x" * 1_000_000}
    run = server.attack(post("/v1/responses", body))
    assert run.response.status_code in (400, 404), run.response.text[:300]
    assert_no_stall(run, _parse_allowance(len(run.response.request.content)))


def test_a_conversation_near_the_body_limit_with_truncation_auto_does_not_stall(server):
    """`truncation: "auto"` over ~7 MB of history (2,000 items): the older turns are counted out
    newest first, a context's worth at most is rendered, off the loop (proxy/core/truncation.py),
    and the answer is served; without truncation the same body is the gate's cheap 400."""
    text = "lorem ipsum dolor sit amet " * 130
    items = []
    for i in range(1_000):
        items.append({"role": "user", "content": f"q{i} {text}"})
        items.append({"role": "assistant", "content": f"a{i} {text}"})
    items[-1] = {"role": "user", "content": "last question"}
    body = {"model": server.model, "input": items, "max_output_tokens": 64, "store": False}
    data = json.dumps({**body, "truncation": "auto"}).encode()
    run = server.attack(post("/v1/responses", {**body, "truncation": "auto"}))
    assert run.response.status_code == 200, run.response.text[:300]
    assert run.response.json()["usage"]["input_tokens"] <= 8192 - 64
    assert_no_stall(run, _parse_allowance(len(data)))
    error = refused(server, post("/v1/responses", body))
    assert error["code"] == "context_length_exceeded"
