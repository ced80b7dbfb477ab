"""`--warm-tools FILE`: compile known agents' tool grammars before the first request needs them.

The first request with a new tool set waits for the engine to compile its grammar (on a 2-core
host about 12 ms for 8 tools and 60-80 ms for 64 on a running engine, and 55 ms for the first
grammar of an engine's life, which also compiles the JSON core every later set reuses:
proxy/core/grammar.py, benchmarks/bench_grammar.py), and agents send the same 10-30 tools every
turn, so that wait is the first thing their users see. This reads a file of tool sets at
start-up, checks each as a request would be checked (a bad file stops the server with a message
naming the entry), and once the engine is ready plans one request per set (which fills this
process's grammar caches) and sends it to the engine for one token (which makes the engine
compile and cache the same grammar text a real request will send: xgrammar's compiler cache is
keyed by that text). With replicas, every admitted replica is warmed; with `--workers N`, each
worker plans its own copy and the engine compiles once.

What is warmed is the grammar of `tool_choice: "auto"` with the API's default options, the
form agents use; a named or required choice, or an answer schema, compiles on first use.

The file is JSON: a list of tool sets, each `{"api": "chat" | "responses", "tools": [...]}`
(tools exactly as that API takes them), or a bare list of tools (chat's form).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from proxy.api.chat_request import declared_tools
from proxy.api.chat_schema import ChatCompletionRequest
from proxy.api.responses.tools import read_tools
from proxy.backends.base import EngineBackend
from proxy.backends.pool import ReplicaPool
from proxy.core.errors import ProxyError
from proxy.core.request import GenerationRequest, UserText
from proxy.core.service import GenerationService
from proxy.core.tools import validate_schemas
from proxy.server.flags import SettingsError

logger = logging.getLogger("proxy")

# Bounds on the file (it is the operator's, but a typo should not take minutes of start-up).
MAX_TOOL_SETS = 256
MAX_FILE_BYTES = 16 * 1024 * 1024
_OPTION = "--warm-tools"


def read_warm_tools(path: str) -> tuple[GenerationRequest, ...]:
    """One request per tool set in `path`; SettingsError naming the entry that is wrong."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise SettingsError(f"{_OPTION} {path}: over {MAX_FILE_BYTES >> 20} MiB")
        data = json.loads(file.read_bytes())
    except OSError as exc:
        raise SettingsError(f"{_OPTION} {path}: cannot read it ({exc.strerror})") from None
    except ValueError as exc:
        raise SettingsError(f"{_OPTION} {path}: not JSON ({exc})") from None
    if not isinstance(data, list):
        raise SettingsError(f"{_OPTION} {path}: expected a JSON list of tool sets")
    if data and all(isinstance(t, dict) and "type" in t for t in data):
        data = [{"api": "chat", "tools": data}]  # a bare list of chat tools
    if len(data) > MAX_TOOL_SETS:
        raise SettingsError(f"{_OPTION} {path}: {len(data)} tool sets; at most {MAX_TOOL_SETS}")
    return tuple(_request(entry, f"{path}[{i}]") for i, entry in enumerate(data))


def _request(entry: Any, where: str) -> GenerationRequest:
    if not isinstance(entry, dict) or not isinstance(entry.get("tools"), list):
        raise SettingsError(f"{_OPTION} {where}: expected {{'api': ..., 'tools': [...]}}")
    api = entry.get("api", "chat")
    try:
        if api == "chat":
            body = ChatCompletionRequest.model_validate(
                {
                    "model": "-",
                    "messages": [{"role": "user", "content": "-"}],
                    "tools": entry["tools"],
                }
            )
            tools = declared_tools(body)
        elif api == "responses":
            tools = read_tools(entry["tools"])
        else:
            raise SettingsError(f"{_OPTION} {where}: `api` must be chat or responses")
        tools = list(validate_schemas(tuple(tools)))
    except ValidationError as exc:
        raise SettingsError(f"{_OPTION} {where}: {exc.errors()[0]['msg']}") from None
    except ProxyError as exc:
        raise SettingsError(f"{_OPTION} {where}: {exc.message} ({exc.param})") from None
    if not tools:
        raise SettingsError(f"{_OPTION} {where}: no callable tools in this set")
    return GenerationRequest(
        model="",
        parts=(UserText("-", "warm"),),
        tools=tuple(tools),
        completion_id="warm",
    )


async def warm_tool_sets(
    service: GenerationService, requests: tuple[GenerationRequest, ...]
) -> None:
    """Plan each set and have every engine compile its grammar; failures are logged, not fatal
    (the set then compiles on first use, as without the flag)."""
    if not requests:
        return
    backend = service.backend
    engines = _engines(backend) if backend.supports_grammar else []
    model = service.model_names()[0]
    began = time.perf_counter()
    warmed = 0
    for i, request in enumerate(requests):
        request = dataclasses.replace(request, model=model, completion_id=f"warm-{i}")
        try:
            plan = await service.executor.submit(
                lambda r=request: service.plan(r, threading.Event())
            )
            sampling = dataclasses.replace(plan.sampling, max_tokens=1)
            for engine in engines:
                stream = engine.generate(
                    plan.prompt_token_ids, sampling, f"warm-{i}-{secrets.token_hex(4)}"
                )
                async for _ in stream:
                    pass
            warmed += 1
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - best effort: the server serves without it
            logger.warning("%s: tool set %d could not be warmed", _OPTION, i, exc_info=True)
    logger.info(
        "%s: %d of %d tool sets compiled on %d engine(s) in %.2f s",
        _OPTION,
        warmed,
        len(requests),
        len(engines),
        time.perf_counter() - began,
    )


def _engines(backend: EngineBackend) -> list[EngineBackend]:
    """The engines that compile grammars: each admitted replica of a pool, else the backend."""
    if isinstance(backend, ReplicaPool):
        return [r.backend for r in backend.replicas if r.admitted and r.backend.has_tokenizer]
    return [backend]
