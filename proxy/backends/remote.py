"""One remote vLLM server as an `EngineBackend`: token ids over HTTP, no engine in the proxy.

At start-up the replica is interrogated once, so that a wrong deployment fails there rather than
as garbage at request time:
- `/v1/models` gives the served model name and `max_model_len`;
- `/tokenize` must turn Harmony's special tokens and some plain text into our ids (same
  vocabulary). A replica without a tokenizer (`--skip-tokenizer-init`, `--tokens-only`) cannot
  be checked, nor can it compile grammars: it is accepted, but requests that carry
  `structured_outputs` (tool_choice, response_format) are refused with a 400 naming the reason
  (`GrammarUnsupported`), and a pool routes such requests to replicas that have a tokenizer;
- `/inference/v1/generate` is used when the server offers it (probed with an empty body: a
  validation error means it exists), `/v1/completions` otherwise.

Failures are classified for the pool: `ReplicaDown` (connection refused or reset: the replica
is unhealthy), `ReplicaBusy` (its 429/503, with Retry-After), both `EngineNotReady` so a lone
replica answers 503; its 400 becomes `EngineRefused` (the HTTP layer answers 400 with its message).
The messages of errors a client may see name the replica (`name`, "replica 0"), never its URL:
the URL and the underlying error are logged here instead.

Replicas started with `vllm serve --api-key` (or VLLM_API_KEY) refuse requests to /v1 and
/inference without it: `api_key` is sent as `Authorization: Bearer` on every request (both
clients carry it as a default header), and a 401/403 during the start-up checks is a deployment
error (`ReplicaMismatch`) naming the flag to fix.

Two HTTP clients, for two kinds of traffic: httpx for the handful of control requests (start-up
checks, health probes, aborts), and aiohttp for the token streams, where the proxy reads one
event per token per request. aiohttp (its C HTTP parser, blocks split by `SseLines`) reads a
replica's token stream for a third of httpx's CPU per token (`benchmarks/bench_replica_read.py`:
12 against 35-38 us), and halved the proxy's own CPU per token on this path
(`benchmarks/bench_ceiling.py --setups remote`: 0.12-0.15 -> 0.06-0.07 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import orjson
from prometheus_client.metrics_core import Metric

from proxy.backends.base import (
    EngineError,
    EngineNotReady,
    EngineRefused,
    GenerationChunk,
    SamplingConfig,
)
from proxy.backends.remote_wire import (
    ABORT_PATH,
    COMPLETIONS_PATH,
    GENERATE_PATH,
    Protocol,
    ReadyChunks,
    SseLines,
    UpstreamError,
    completions_body,
    engine_request_id,
    error_from_json,
    generate_body,
)

logger = logging.getLogger("proxy.remote")

# Harmony's special tokens around some plain text, and the ids our vocabulary gives them.
VOCAB_PROBE_TEXT = (
    "<|start|>user<|message|>Hello, world! 12<|end|><|start|>assistant<|channel|>final"
    "<|constrain|>json<|message|>{}<|call|><|return|><|endoftext|>"
)
READ_TIMEOUT = 300.0
# Anything wrong with the connection itself (refused, reset, timed out, protocol errors), on
# the control client and on the stream client (its read timeouts are TimeoutErrors).
_CONNECTION_ERRORS = (httpx.TransportError,)
_STREAM_ERRORS = (aiohttp.ClientError, TimeoutError)
_JSON_HEADERS = {"Content-Type": "application/json"}


class ReplicaDown(EngineNotReady):
    """The replica could not be reached, or dropped the connection: it is unhealthy."""


class ReplicaBusy(EngineNotReady):
    """The replica answered 429/503: try another one, or tell the client when to retry."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ReplicaMismatch(RuntimeError):
    """The replica serves another vocabulary (or model): a deployment error, fatal at start-up."""


class GrammarUnsupported(EngineRefused):
    """A request with a grammar reached a replica that has no tokenizer to compile it."""


def expected_probe_ids() -> list[int]:
    from proxy.core.conversation import load_encoding

    return load_encoding().encode(VOCAB_PROBE_TEXT, allowed_special="all")


class RemoteBackend:
    """`EngineBackend` over one vLLM server's HTTP API (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 5.0,
        health_timeout: float = 5.0,
        expected_model: str | None = None,
        name: str = "the replica",
        api_key: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.name = name
        self._auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._connect_timeout = connect_timeout
        self._health_timeout = health_timeout
        self._expected_model = expected_model
        self._client: httpx.AsyncClient | None = None
        self._streams: aiohttp.ClientSession | None = None
        self._model_name = ""
        self._max_model_len = 0
        self.protocol: Protocol = "completions"
        self.has_tokenizer = False
        self.started = False
        self.healthy = False
        self.in_flight = 0
        self._live: dict[str, asyncio.Task[Any] | None] = {}

    # -- EngineBackend properties ---------------------------------------------------------
    @property
    def model_name(self) -> str:
        return self._model_name or self._expected_model or ""

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    @property
    def merges_while_unread(self) -> bool:
        """A replica's events wait in the socket but stay separate events (a burst, marked
        `more_ready`): read ahead, as measured better at 1,024 streams (bench_paced.py)."""
        return False

    @property
    def supports_grammar(self) -> bool:
        """A replica without a tokenizer cannot compile grammars."""
        return self.has_tokenizer

    def collect(self) -> list[Metric]:
        return []

    @property
    def ready(self) -> bool:
        return self.started and self.healthy

    # -- lifecycle -----------------------------------------------------------------------
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # A replica silent for READ_TIMEOUT (no byte: not even a token while generating) is
            # stalled: the request is retried elsewhere if nothing was sent yet, else it ends
            # with an error event. Prefill of the longest prompt fits well inside it.
            timeout = httpx.Timeout(
                connect=self._connect_timeout, read=READ_TIMEOUT, write=30, pool=30
            )
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
            self._client = httpx.AsyncClient(
                base_url=self.url, timeout=timeout, limits=limits, headers=self._auth
            )
        return self._client

    def streams(self) -> aiohttp.ClientSession:
        """The token streams' client (same timeouts: see `client`), created on first use, in
        the process and event loop that stream (each `--workers` process has its own)."""
        if self._streams is None:
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=self._connect_timeout, sock_read=READ_TIMEOUT
            )
            # No connection limit (admission control bounds the streams), and HTTP(S)_PROXY /
            # NO_PROXY honoured as httpx honours them for the control requests.
            self._streams = aiohttp.ClientSession(
                timeout=timeout,
                connector=aiohttp.TCPConnector(limit=0),
                trust_env=True,
                headers=self._auth,
            )
        return self._streams

    async def start(self) -> None:
        """Learn the model, check the vocabulary, pick the protocol. Raises ReplicaDown while
        the server is unreachable or still loading, ReplicaMismatch on a wrong deployment."""
        try:
            models = await self._get_json("/v1/models")
            cards = models.get("data") or []
            if not cards:
                raise ReplicaMismatch(f"{self.url} serves no model")
            card = cards[0]
            if self._expected_model is not None and card["id"] != self._expected_model:
                names = [c.get("id") for c in cards]
                if self._expected_model not in names:
                    raise ReplicaMismatch(
                        f"{self.url} serves {names}, not the pool's model {self._expected_model!r}"
                    )
                card = cards[names.index(self._expected_model)]
            self._model_name = str(card["id"])
            self._max_model_len = int(card.get("max_model_len") or 0)
            if self._max_model_len <= 0:
                raise ReplicaMismatch(f"{self.url} does not report max_model_len in /v1/models")
            self.has_tokenizer = await self._check_vocabulary()
            self.protocol = await self._probe_protocol()
        except _CONNECTION_ERRORS as exc:
            self.healthy = False
            raise ReplicaDown(f"{self.url} is unreachable: {exc!r}") from exc
        self.started = True
        self.healthy = True
        logger.info(
            "replica %s: model %s, max_model_len %d, protocol %s, tokenizer %s",
            self.url,
            self._model_name,
            self._max_model_len,
            self.protocol,
            self.has_tokenizer,
        )

    async def _get_json(self, path: str) -> Any:
        response = await self.client().get(path, timeout=self._health_timeout)
        if response.status_code == 503:
            raise ReplicaDown(f"{self.url}{path} answered 503 (still loading?)")
        if response.status_code in (401, 403):
            raise ReplicaMismatch(
                f"{self.url}{path} answered {response.status_code}: the replica requires an API "
                "key (vllm serve --api-key) and the proxy's --backend-api-key / "
                "HARMONY_PROXY_BACKEND_API_KEY is missing or wrong"
            )
        response.raise_for_status()
        return response.json()

    async def _check_vocabulary(self) -> bool:
        """True when the replica tokenizes like us; False when it has no tokenizer to ask."""
        response = await self.client().post(
            "/tokenize",
            json={
                "model": self._model_name,
                "prompt": VOCAB_PROBE_TEXT,
                "add_special_tokens": False,
            },
            timeout=self._health_timeout,
        )
        if response.status_code in (404, 405, 501) or (
            response.status_code >= 400 and "tokenizer" in response.text.lower()
        ):
            logger.warning("replica %s has no tokenizer: vocabulary unchecked", self.url)
            return False
        response.raise_for_status()
        tokens = response.json().get("tokens")
        expected = expected_probe_ids()
        if tokens != expected:
            raise ReplicaMismatch(
                f"{self.url} does not use the o200k_harmony vocabulary: /tokenize gave "
                f"{tokens} for Harmony's special tokens where we expect {expected}"
            )
        return True

    async def _probe_protocol(self) -> Protocol:
        response = await self.client().post(GENERATE_PATH, json={}, timeout=self._health_timeout)
        return "generate" if response.status_code in (400, 422) else "completions"

    async def check_health(self) -> bool:
        """One health probe (`/health`); updates and returns `healthy`."""
        try:
            response = await self.client().get("/health", timeout=self._health_timeout)
            self.healthy = response.status_code == 200
        except (httpx.HTTPError, OSError):
            self.healthy = False
        return self.healthy

    async def shutdown(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        streams, self._streams = self._streams, None
        if streams is not None:
            await streams.close()

    # -- generation ----------------------------------------------------------------------
    async def generate(
        self, prompt_token_ids: list[int], sampling: SamplingConfig, request_id: str
    ) -> AsyncIterator[GenerationChunk]:
        """Stream the replica's token deltas (see `EngineBackend.generate`)."""
        if not self.started:
            raise EngineNotReady(f"{self.name} is not started")
        if sampling.structured_outputs is not None and not self.has_tokenizer:
            raise GrammarUnsupported(
                "tool_choice/response_format need a grammar, and the replica serving this model "
                "loads no tokenizer to compile one (it runs with --skip-tokenizer-init or "
                "--tokens-only); serve it with its tokenizer"
            )
        build = generate_body if self.protocol == "generate" else completions_body
        body = orjson.dumps(build(prompt_token_ids, sampling, request_id, self._model_name))
        path = GENERATE_PATH if self.protocol == "generate" else COMPLETIONS_PATH
        self.in_flight += 1
        sent = False
        try:
            async with self.streams().post(
                self.url + path, data=body, headers=_JSON_HEADERS
            ) as response:
                if response.status != 200:
                    raise self._http_error(response.status, await response.read(), response.headers)
                reader = ReadyChunks(sampling, self.protocol)
                async for lines in _blocks(response):
                    ready, failure = reader.block(lines)
                    for chunk in ready:
                        yield chunk
                        sent = True
                    if failure is not None:
                        raise failure
                for chunk in reader.rest():
                    yield chunk
        except UpstreamError as exc:
            raise self._classify(exc, sent) from exc
        except _STREAM_ERRORS as exc:
            self.healthy = False
            logger.warning("%s (%s) failed a request: %r", self.name, self.url, exc)
            if sent:
                raise EngineError(f"{self.name} dropped the stream") from exc
            raise ReplicaDown(f"{self.name} is unreachable") from exc
        except json.JSONDecodeError as exc:
            logger.warning("%s (%s) sent malformed JSON: %s", self.name, self.url, exc)
            raise EngineError(f"{self.name} sent malformed JSON") from exc
        finally:
            self.in_flight -= 1

    def _http_error(self, status: int, raw: bytes, headers: Any) -> Exception:
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            payload = {"error": {"message": raw.decode(errors="replace").strip()[:500]}}
        error = error_from_json(status, payload)
        error.status = status
        if status in (429, 503):
            return ReplicaBusy(error.message, _seconds(headers.get("retry-after")))
        return error

    def _classify(self, exc: UpstreamError, sent: bool) -> Exception:
        if exc.status in (400, 422) and not sent:
            return EngineRefused(exc.message)
        if exc.status in (429, 503) and not sent:
            return ReplicaBusy(exc.message)
        # Any other failure (a 500 included) may be this request's own doing: it fails the
        # request, not the replica, whose health its /health probe decides. Ejecting on it
        # would let one bad request take every replica out of the pool in turn.
        return EngineError(f"{self.name}: {exc.message}")

    async def abort(self, request_id: str) -> None:
        """Closing the stream already ends the request (vLLM aborts on disconnect); the abort
        endpoint makes that explicit where the server has one."""
        if self.protocol != "generate" or self._client is None:
            return
        with contextlib.suppress(httpx.HTTPError, OSError):
            await self.client().post(
                ABORT_PATH,
                json={"request_ids": [engine_request_id(request_id)]},
                timeout=self._health_timeout,
            )


async def _blocks(response: aiohttp.ClientResponse) -> AsyncIterator[list[bytes]]:
    """The body's complete lines, a list per block the socket delivered (all it had buffered:
    under load, several events at once)."""
    lines = SseLines()
    async for block in response.content.iter_any():
        complete = lines.feed(block)
        if complete:
            yield complete


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
