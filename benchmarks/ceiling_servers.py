"""The servers the ceiling benchmarks measure, each a real process on 127.0.0.1.

`scripted_server` (the CLI's serving path over the instant, in-process `ScriptedBackend`),
`floor_server` (bare uvicorn writing captured events: benchmarks/floor_server.py),
`fake_replica` and `remote_server` (the remote path in front of an instant fake vLLM replica),
and `warm_up`, which checks a server answers both benchmark requests. Used by
benchmarks/bench_ceiling.py and benchmarks/bench_paced.py; see bench_ceiling.py for what each
set-up measures.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.ceiling_clients import MODEL  # noqa: E402
from benchmarks.proc_cpu import process_tree, stop_process  # noqa: E402
from proxy.server.probe import ExitedWhileStarting, wait_until_ok  # noqa: E402
from tests.support.replay import chat_request  # noqa: E402
from tests.support.replicas import free_port  # noqa: E402

_USAGE = re.compile(rb'"completion_tokens":(\d+)')


@dataclass
class Server:
    name: str
    url: str
    pid: int  # the server's root process (a supervisor with --workers)
    helper_pid: int | None = None  # the fake replica, measured apart


def _wait_ready(
    url: str, process: subprocess.Popen[bytes], log: Path, path: str = "/ready"
) -> None:
    try:
        wait_until_ok(f"{url}{path}", timeout=180, process=process, interval=0.2)
    except (ExitedWhileStarting, TimeoutError) as exc:
        raise RuntimeError(f"{process.args}: {exc}; see {log}") from None


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


@contextmanager
def scripted_server(
    tokens: int,
    logs: Path,
    stack: str = "auto",
    root: Path = ROOT,
    extra: tuple[str, ...] = (),
    label: str = "",
) -> Iterator[Server]:
    """`stack`: `auto` (uvicorn's choice: uvloop + httptools when installed) or `asyncio`
    (asyncio's own loop + h11), to measure what the C loop and parser are worth. `root`: the
    checkout whose code serves (`--compare-root`: another revision, same benchmark). `extra`:
    more `scripted_serve` arguments (`--pace-ms`), `label` naming the set-up."""
    port = free_port()
    log = logs / f"scripted-{stack}-{root.name}{label.replace(' ', '-')}.log"
    args = [sys.executable, "-m", "tests.support.scripted_serve", "--port", str(port)]
    args += ["--replay-tokens", str(tokens), "--log-level", "warning", *extra]
    if stack == "asyncio":
        args += ["--loop", "asyncio", "--http", "h11"]
    with open(log, "ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log)
        name = "scripted, 1 process" + (", asyncio+h11" if stack == "asyncio" else "") + label
        yield Server(name if root == ROOT else f"scripted, {root}", url, process.pid)
    finally:
        stop_process(process, timeout=30)


def capture_events(url: str, logs: Path) -> Path:
    """The scripted server's SSE events for the benchmark's two requests, for the floor."""
    captured = {}
    with httpx.Client(timeout=120) as client:
        for kind, tools in (("answer", False), ("tools", True)):
            body = chat_request(MODEL, tools=tools)
            text = client.post(f"{url}/v1/chat/completions", json=body).text
            captured[kind] = [event + "\n\n" for event in text.split("\n\n") if event]
    path = logs / "floor-events.json"
    path.write_text(json.dumps(captured))
    return path


@contextmanager
def floor_server(events: Path, logs: Path) -> Iterator[Server]:
    """benchmarks/floor_server.py: bare uvicorn writing the captured events, no proxy."""
    port = free_port()
    log = logs / "floor.log"
    script = str(ROOT / "benchmarks" / "floor_server.py")
    process = _spawn([sys.executable, script, "--port", str(port), "--events", str(events)], log)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log)
        yield Server("floor: bare uvicorn, same bytes", url, process.pid)
    finally:
        stop_process(process, timeout=30)


@contextmanager
def fake_replica(tokens: int, logs: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    log = logs / "fake-replica.log"
    args = [sys.executable, "-m", "tests.remote.fake_replica", "--port", str(port)]
    process = _spawn([*args, "--replay-tokens", str(tokens)], log)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log, "/health")
        yield url, process.pid
    finally:
        stop_process(process, timeout=30)


@contextmanager
def remote_server(
    replica: tuple[str, int], workers: int, logs: Path, merge: bool = True
) -> Iterator[Server]:
    port = free_port()
    log = logs / f"remote-{workers}{'' if merge else '-unmerged'}.log"
    args = [sys.executable, "-m", "proxy", "serve", "--port", str(port), "--date", "2026-01-15"]
    args += ["--backend-url", replica[0], "--log-level", "warning"]
    if not merge:
        args += ["--no-merge-ready-outputs"]
    if workers > 1:
        args += ["--workers", str(workers)]
    process = _spawn(args, log)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log)
        if workers > 1:  # every worker up (each answers /ready once its pool is)
            deadline = time.monotonic() + 120
            while len(process_tree(process.pid)) < workers + 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(3)
        name = f"remote, {workers} process{'es' if workers > 1 else ''}"
        name += "" if merge else ", unmerged"
        yield Server(name, url, process.pid, helper_pid=replica[1])
    finally:
        stop_process(process, timeout=30)


def warm_up(url: str) -> int:
    """Both completions once (the tool request compiles its grammar); tokens per request."""
    with httpx.Client(timeout=120) as client:
        sizes = []
        for tools in (False, True):
            response = client.post(
                f"{url}/v1/chat/completions", json=chat_request(MODEL, tools=tools)
            )
            response.raise_for_status()
            text = response.text
            assert text.rstrip().endswith("data: [DONE]"), text[-300:]
            kind = '"tool_calls"' if tools else '"content"'
            assert kind in text and '"reasoning' in text, text[:600]
            sizes.append(int(_USAGE.findall(text.encode())[-1]))
    return round(sum(sizes) / len(sizes))
