"""harmony-proxy: gpt-oss behind the APIs agents speak (chat completions, Responses, Messages).

A request's path, one package a step: `proxy/api/` reads the API's wire schema into the core's
neutral `GenerationRequest`; `proxy/core/` checks its cost (the gate), admits it, renders it to
Harmony prompt tokens (the `harmony` package), builds its grammar and runs it on an engine
(`proxy/backends/`: vLLM in process, remote vLLM replicas, or a scripted engine in tests),
parsing the tokens back into neutral events; `proxy/api/` renders those as the API's own
objects and events; `proxy/server/` is the HTTP edge, the CLI, settings, drain and metrics.
`create_app(config, backend)` is the entry point for embedding; it is imported lazily so
`import proxy.server.cli` stays fast.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ProxyConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from proxy.server.app import create_app

        return create_app
    if name == "ProxyConfig":
        from proxy.server.settings import ProxyConfig

        return ProxyConfig
    raise AttributeError(name)
