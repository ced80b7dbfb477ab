"""The FastAPI application: `create_app(config, backend)`.

The lifespan starts loading the Harmony encoding and the engine in the background and returns
at once, so the server answers while the engine loads: /ready and the API answer 503 until the
engine is ready. /health is liveness: 200 while the engine loads or serves (and while draining),
503 once it failed to start or died, so a supervisor restarts the pod. Routes under /v1 need
the API key when one is configured (proxy/server/keys.py; the key file is re-read on SIGHUP);
/health and /ready stay open for probes, /metrics too unless it has a key of its own. A
watchdog turns engine death into a drain and exit code 1 when the lifecycle asks for it (the
CLI does; tests sharing one process do not).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response

from proxy.api.chat import ChatCompletions
from proxy.api.chat_request import precheck_body as chat_precheck
from proxy.api.chat_schema import ModelCard, ModelList
from proxy.api.conversations.endpoint import ConversationsEndpoint
from proxy.api.conversations.items import precheck_body as conversations_precheck
from proxy.api.conversations.store import open_conversation_store
from proxy.api.messages.endpoint import MessagesEndpoint
from proxy.api.messages.request import precheck_body as messages_precheck
from proxy.api.responses.background import BackgroundResponses, background_log
from proxy.api.responses.endpoint import ResponsesEndpoint
from proxy.api.responses.request import precheck_body as responses_precheck
from proxy.backends.base import EngineBackend
from proxy.core.caller import caller_of
from proxy.core.conversation import load_encoding
from proxy.core.errors import EngineLoading, ModelNotFound
from proxy.core.grammar import warm_up as warm_up_grammar
from proxy.core.request import GenerationRequest
from proxy.core.service import GenerationService
from proxy.hosted.openers import warm_up_hosted
from proxy.server.edge import REQUEST_ID_HEADER, ApiKeyCheck, BodyGate, HarmonyProxyApp
from proxy.server.error_handlers import install_error_handlers
from proxy.server.json_body import checked_route_class
from proxy.server.key_limits import CallerBudget, KeyLimits
from proxy.server.keys import ApiKeys
from proxy.server.lifecycle import EXIT_ENGINE_DEAD, Lifecycle
from proxy.server.loop_lag import LoopLagMonitor
from proxy.server.metrics import ProxyMetrics, api_of_path
from proxy.server.request_log import RequestRecord
from proxy.server.response_state import open_response_state
from proxy.server.settings import ProxyConfig
from proxy.server.warm_tools import read_warm_tools, warm_tool_sets

logger = logging.getLogger("proxy")


# What /ready and refused requests say about a failed start-up (the cause is in the log).
STARTUP_FAILED = "the cause is in the server's log"


# Routes whose schema refusals are counted and logged as requests.
class _Startup:
    """Loads the encoding and the engine in the background; remembers a failure."""

    def __init__(
        self,
        service: GenerationService,
        on_ready: Callable[[], None] | None,
        warm: tuple[GenerationRequest, ...] = (),
    ) -> None:
        self.service = service
        self.on_ready = on_ready
        self.warm = warm  # tool sets compiled before /ready says ready (--warm-tools)
        self.task: asyncio.Task[None] | None = None

    @property
    def error(self) -> str | None:
        return self.service.startup_error

    async def run(self) -> None:
        try:
            await asyncio.to_thread(warm_up_encoding)
            await asyncio.to_thread(warm_up_grammar)
            await asyncio.to_thread(warm_up_hosted)
            self.service.encoding_loaded = True
            await self.service.backend.start()
            await warm_tool_sets(self.service, self.warm)
            logger.info("engine ready: %s", self.service.backend.model_name)
            if self.on_ready is not None:
                self.on_ready()
        except Exception:  # noqa: BLE001 - reported by /ready, not crash the server
            # The cause goes to the log only: its text may hold internal addresses, paths or
            # a replica's own error, none of which /ready (open to anyone) or clients may see.
            logger.exception("engine failed to start")
            self.service.startup_error = STARTUP_FAILED
        finally:
            self.service.startup_done = True


def create_app(
    config: ProxyConfig,
    backend: EngineBackend,
    *,
    owns_backend: bool = True,
    on_ready: Callable[[], None] | None = None,
    lifecycle: Lifecycle | None = None,
    exit_on_engine_failure: bool = False,
    engine_stats: bool = False,
) -> FastAPI:
    """An app serving `backend` under `config`; the engine starts loading with the lifespan.

    `owns_backend=False` leaves the backend running at shutdown (tests share one engine between
    several servers). `on_ready` is called once the engine is ready (the CLI prints the URL).
    `lifecycle` is shared with whoever runs the server (the CLI's drain on SIGTERM);
    `exit_on_engine_failure` makes a dead or failed engine drain the server with exit code 1;
    `engine_stats` adds vLLM's `vllm:*` metrics to /metrics.
    """
    metrics = ProxyMetrics()
    metrics.add_collector(backend)  # (a replica pool's per-replica metrics; most have none)
    lifecycle = lifecycle or Lifecycle()
    keys = ApiKeys(config.api_keys, config.api_key_file)
    lifecycle.reloaders.append(keys.reload)
    budget = CallerBudget(config.key_max_concurrent, config.key_tokens_per_minute)
    service = GenerationService(
        config.service_settings(),
        backend,
        metrics,
        lifecycle,
        on_usage=budget.spend if budget.tokens_per_minute else None,
    )
    chat = ChatCompletions(service, config)
    warm = read_warm_tools(config.warm_tools) if config.warm_tools else ()
    startup = _Startup(service, on_ready, warm)
    store, sealer, scratch = open_response_state(config)
    lifecycle.reloaders.append(sealer.reload)  # SIGHUP: a rotated reasoning key file
    conversation_store = (
        open_conversation_store(
            store,
            max_bytes=config.conversation_max_bytes,
            max_per_owner=config.conversation_max_per_key,
        )
        if store
        else None
    )
    responses = ResponsesEndpoint(service, config, store, sealer, conversation_store)
    conversations = ConversationsEndpoint(
        conversation_store,
        config.limits,
        sealer,
        service.model_names,
        max_item_bytes=config.conversation_max_item_bytes,
    )
    messages = MessagesEndpoint(service, config, sealer)

    background = BackgroundResponses(responses, background_log(config, store))

    def engine_state() -> str:
        if service.startup_error:
            return "failed"
        if not service.startup_done:
            return "loading"
        return "ready" if backend.ready else "dead"

    async def watch_engine() -> None:
        """Engine failed or died: drain at once and exit 1, so a supervisor restarts us."""
        while True:
            await asyncio.sleep(0.5)
            if engine_state() in ("failed", "dead") and lifecycle.exit_code != EXIT_ENGINE_DEAD:
                logger.error("the engine is %s; stopping with exit code 1", engine_state())
                lifecycle.begin_drain(EXIT_ENGINE_DEAD, grace_seconds=0)
                service.admission.reject_waiting(lifecycle.interrupt_error())

    async def mirror_replica_metrics() -> None:
        """Workers share their metrics through files: copy the pool's figures there."""
        while metrics.mirror is not None:
            metrics.mirror.sync()
            await asyncio.sleep(1.0)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        startup.task = asyncio.create_task(startup.run())
        watchdog = asyncio.create_task(watch_engine()) if exit_on_engine_failure else None
        mirror = asyncio.create_task(mirror_replica_metrics()) if metrics.mirror else None
        lag = asyncio.create_task(
            LoopLagMonitor(
                metrics.loop_lag,
                metrics.loop_lateness,
                relaxed=config.loop_lag_relaxed_seconds,
                alert=service.pressure.enter,  # quick wake-ups from the backlog's threshold
                observer=service.pressure.observe,
            ).run(after=startup.task)
        )
        lifecycle.on_drain = lambda: service.admission.reject_waiting(lifecycle.interrupt_error())
        await background.sweep()
        try:
            yield
        finally:
            await background.aclose()
            for task in (startup.task, watchdog, mirror, lag):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            if store is not None:
                store.close()
            service.executor.shutdown()
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            if owns_backend:
                await backend.shutdown()

    app = HarmonyProxyApp(title="harmony-proxy", lifespan=lifespan, docs_url=None, redoc_url=None)
    limits = config.limits
    app.router.route_class = checked_route_class(
        {
            "/v1/chat/completions": lambda data: chat_precheck(data, limits),
            "/v1/responses": lambda data: responses_precheck(data, limits),
            "/v1/conversations": conversations_precheck,
            "/v1/conversations/{conversation_id}/items": conversations_precheck,
            "/v1/messages": lambda data: messages_precheck(data, limits),
            "/v1/messages/count_tokens": lambda data: messages_precheck(data, limits),
        }
    )
    app.state.service = service
    app.state.chat = chat
    app.state.responses = responses
    app.state.background = background
    app.state.messages = messages
    app.state.metrics = metrics
    app.state.startup = startup
    app.state.lifecycle = lifecycle
    install_error_handlers(app, on_error=_count_error(metrics, config))

    def model_cards() -> list[ModelCard]:
        created = int(time.time())
        return [
            ModelCard(id=name, created=created, max_model_len=_max_len(backend))
            for name in service.model_names()
        ]

    @app.get("/health")
    async def health() -> Response:
        state = engine_state()
        body = {
            "status": "ok" if state in ("loading", "ready") else "unhealthy",
            "engine": state,
            "draining": lifecycle.draining,
        }
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    @app.get("/ready")
    async def ready() -> Response:
        if lifecycle.draining:
            return JSONResponse(
                {"status": "draining", "model": backend.model_name},
                status_code=503,
                headers={"Retry-After": str(lifecycle.retry_after_seconds)},
            )
        # (`startup_done`: after --warm-tools too, so traffic arrives with its grammars built)
        if service.encoding_loaded and backend.ready and service.startup_done:
            return JSONResponse({"status": "ready", "model": backend.model_name})
        raise EngineLoading(service.unavailable_reason())

    @app.api_route("/api/hello", methods=["GET", "HEAD"], include_in_schema=False)
    async def hello() -> Response:
        """Claude Code's connectivity probe (`HEAD /api/hello`, sent without credentials
        unless its non-essential traffic is off): answered like the other probes, open."""
        return Response(status_code=200)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(
            metrics.render(engine_stats=engine_stats),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    @app.get("/v1/models")
    async def list_models() -> ModelList:
        return ModelList(data=model_cards())

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str) -> ModelCard:
        for card in model_cards():
            if card.id == model_id:
                return card
        raise ModelNotFound(model_id)

    app.add_api_route(
        "/v1/chat/completions",
        chat.__call__,
        methods=["POST"],
        response_model=None,
    )

    for path, endpoint, method in (
        ("/v1/responses", background.create, "POST"),
        ("/v1/responses/{response_id}", background.retrieve, "GET"),
        ("/v1/responses/{response_id}/cancel", background.cancel, "POST"),
        ("/v1/responses/{response_id}/input_items", responses.input_items, "GET"),
        ("/v1/responses/{response_id}", background.delete, "DELETE"),
        ("/v1/conversations", conversations.create, "POST"),
        ("/v1/conversations/{conversation_id}", conversations.retrieve, "GET"),
        ("/v1/conversations/{conversation_id}", conversations.update, "POST"),
        ("/v1/conversations/{conversation_id}", conversations.delete, "DELETE"),
        ("/v1/conversations/{conversation_id}/items", conversations.list_items, "GET"),
        ("/v1/conversations/{conversation_id}/items", conversations.create_items, "POST"),
        ("/v1/conversations/{conversation_id}/items/{item_id}", conversations.retrieve_item, "GET"),
        (
            "/v1/conversations/{conversation_id}/items/{item_id}",
            conversations.delete_item,
            "DELETE",
        ),
        ("/v1/messages", messages.create, "POST"),
        ("/v1/messages/count_tokens", messages.count_tokens, "POST"),
    ):
        app.add_api_route(
            path,
            endpoint,
            methods=[method],
            response_model=None,
        )

    # Innermost first: the body is read only for an authorized client; CORS outermost so
    # browsers can read even a 401.
    app.add_middleware(
        BodyGate, max_bytes=config.max_body_bytes, deadline=config.body_deadline_seconds
    )
    app.add_middleware(KeyLimits, budget=budget, metrics=metrics, request_log=config.request_log)
    app.add_middleware(ApiKeyCheck, keys=keys, metrics_key=config.metrics_key)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=[REQUEST_ID_HEADER],
        )
    return app


def warm_up_encoding() -> None:
    """Load the vocabulary and build the parser's per-token tables (bytes and text of all
    201,088 tokens, ~0.3 s) now, in a thread, rather than on the event loop at the first
    request's first token."""
    encoding = load_encoding()
    encoding._token_text(0)


def _max_len(backend: EngineBackend) -> int | None:
    try:
        return backend.max_model_len if backend.ready else None
    except Exception:  # noqa: BLE001 - unknown until the engine is loaded
        return None


def _count_error(metrics: ProxyMetrics, config: ProxyConfig):  # noqa: ANN202
    def count(request: Request, status: int) -> None:
        if status == 500:
            metrics.internal_errors.inc()
        api = api_of_path(request.url.path)
        if api is not None and status in (400, 500):
            caller = caller_of(request)
            metrics.requests.labels(api, str(status), "", caller.name).inc()
            if status == 400 and config.request_log:  # refused by schema validation
                request_id = getattr(request.state, "request_id", "")
                RequestRecord(
                    id=request_id, api=api, status=400, error="invalid_request_error", caller=caller
                ).emit()

    return count
