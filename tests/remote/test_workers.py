"""`harmony-proxy serve --workers 2 --backend-url ...`: two proxy processes on one port.

The command runs as a real subprocess in front of a fake replica (a real HTTP server replaying
a realistic completion), so no engine is needed. It proves that requests are served by two
different worker processes (each logs its pid on its request-log lines), that /metrics on any
worker shows the totals over both (Prometheus multiprocess mode, the pool's per-replica
counters included), and that SIGTERM drains both and exits 0.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.remote.fake_replica import FakeBehaviour, start_fake, stop_fake
from tests.support.replay import chat_request
from tests.support.replicas import free_port

_REQUEST_LINE = re.compile(r"\[(\d+)\] proxy\.requests: (\{.*\})")


def _metric(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def test_two_workers_serve_requests_in_two_processes(background_loop, tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("SO_REUSEADDR sharing and PR_SET_PDEATHSIG are Linux behaviour")
    fake = background_loop.run(start_fake(FakeBehaviour(replay_tokens=48)))
    port = free_port()
    log = (tmp_path / "serve.log").open("a+")
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--port", str(port), "--date", "2026-01-15"]
        + ["--backend-url", fake.url, "--workers", "2", "--health-check-interval", "0.5"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        ready = 0
        while ready < 2:  # both workers print their Ready line once their pool is admitted
            assert process.poll() is None, _read(log)
            assert time.monotonic() < deadline, _read(log)
            ready = _read(log).count("Ready. Point the OpenAI SDK")
            time.sleep(0.3)

        def one(tools: bool) -> str:
            # A fresh connection each time: the kernel picks the worker that accepts it.
            with httpx.Client(timeout=60) as client:
                response = client.post(
                    f"{url}/v1/chat/completions", json=chat_request("gpt-oss-demo", tools=tools)
                )
                response.raise_for_status()
                return response.text

        sent = 0
        pids: set[int] = set()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            while len(pids) < 2 and sent < 320:
                texts = list(pool.map(one, [i % 2 == 1 for i in range(32)]))
                sent += len(texts)
                assert all(t.rstrip().endswith("data: [DONE]") for t in texts)
                assert any('"tool_calls"' in t for t in texts)
                time.sleep(0.2)
                pids = {int(m.group(1)) for m in _REQUEST_LINE.finditer(_read(log))}
        assert len(pids) == 2, f"one worker served all {sent} requests: {pids}"
        assert process.pid not in pids  # the supervisor serves nothing itself
        served = [json.loads(m.group(2)) for m in _REQUEST_LINE.finditer(_read(log))]
        assert len(served) == sent and {r["status"] for r in served} == {200}

        # Any worker's /metrics: the totals over both (and the pool's per-replica counters).
        deadline = time.monotonic() + 10
        while True:
            text = httpx.get(f"{url}/metrics", timeout=10).text
            totals = (
                _metric(text, "harmony_proxy_requests_total"),
                _metric(text, "harmony_proxy_replica_requests_total"),
            )
            if totals == (sent, sent) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert totals == (sent, sent), text

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, _read(log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        background_loop.run(stop_fake(fake))


def _read(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()


@pytest.mark.replicas
def test_workers_without_replicas_share_one_engine_process(tmp_path):
    """`serve --workers 2` alone: one vLLM engine process, two proxy workers in front of it,
    both APIs answered by the real engine; SIGTERM stops the workers and then the engine."""
    if not sys.platform.startswith("linux"):
        pytest.skip("SO_REUSEADDR sharing and PR_SET_PDEATHSIG are Linux behaviour")
    port = free_port()
    log = (tmp_path / "serve.log").open("a+")
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["VLLM_CPU_KVCACHE_SPACE"] = "1"
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--port", str(port), "--date", "2026-01-15"]
        + ["--workers", "2", "--max-model-len", "2048", "--response-store", str(tmp_path / "r.db")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 900
        while _read(log).count("Ready. Point the OpenAI SDK") < 2:
            assert process.poll() is None, _read(log)[-3000:]
            assert time.monotonic() < deadline, _read(log)[-3000:]
            time.sleep(1)
        engine = re.search(r"vllm serve on 127\.0\.0\.1:(\d+)", _read(log))
        assert engine is not None

        def chat(_: int) -> dict:
            with httpx.Client(timeout=120) as client:
                reply = client.post(
                    f"{url}/v1/chat/completions",
                    json={
                        "model": "gpt-oss-demo",
                        "messages": [{"role": "user", "content": "Hello!"}],
                        "max_tokens": 100,
                    },
                )
                reply.raise_for_status()
                return reply.json()

        pids: set[int] = set()
        for _ in range(5):
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(chat, range(16)))
            assert all(a["choices"][0]["message"]["content"] for a in answers)
            pids = {int(m.group(1)) for m in _REQUEST_LINE.finditer(_read(log))}
            if len(pids) == 2:
                break
        assert len(pids) == 2, f"one worker served every request: {pids}"
        made = httpx.post(
            f"{url}/v1/responses",
            json={"model": "gpt-oss-demo", "input": "Hello!", "max_output_tokens": 100},
            timeout=120,
        ).json()
        assert made["status"] == "completed" and made["output_text"], made
        # Stored by one worker, readable through any (the SQLite store is shared).
        for _ in range(6):
            assert httpx.get(f"{url}/v1/responses/{made['id']}", timeout=30).status_code == 200

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0, _read(log)[-3000:]
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{engine.group(1)}/health", timeout=5)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
