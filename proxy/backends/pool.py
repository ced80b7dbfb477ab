"""Several remote replicas of one model behind the `EngineBackend` contract.

- Health: every `health_interval` seconds each admitted replica's `/health` is probed; after
  `eject_after` failures in a row it is ejected. A request that cannot connect (refused, reset)
  ejects its replica at once. Ejected or never-started replicas are re-probed on the same
  schedule and re-admitted (after the start-up checks again: it may have come back as another
  deployment) once they answer; their remembered prefixes are forgotten (a restart empties the
  cache).
- Routing: `PrefixRouter` (prefix affinity under a load bound) over the admitted replicas'
  outstanding requests. Grammar requests only go to replicas that have a tokenizer.
- Retries: a request that fails before its first token was yielded (so before anything reached
  the client) moves to another replica; once tokens flowed, a failure is the client's error
  event, never a silent re-generation.
- Errors a client may see name a replica by its place in the list ("replica 1"), never by its
  URL (internal addresses stay in the log and the metrics' labels).
- `ready` while one replica is admitted; `model_name`/`max_model_len` are the pool's (the
  smallest context of the admitted replicas, so every replica can serve any admitted request).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from proxy.backends.affinity import PrefixRouter
from proxy.backends.base import EngineError, EngineNotReady, GenerationChunk, SamplingConfig
from proxy.backends.remote import (
    GrammarUnsupported,
    RemoteBackend,
    ReplicaBusy,
    ReplicaDown,
    ReplicaMismatch,
)

logger = logging.getLogger("proxy.pool")


@dataclass
class Replica:
    """One replica's backend and the pool's bookkeeping about it."""

    backend: RemoteBackend
    admitted: bool = False
    failures: int = 0
    requests: int = 0
    errors: int = 0
    affinity_hits: int = 0

    @property
    def url(self) -> str:
        return self.backend.url


class ReplicaPool:
    """`EngineBackend` over N `RemoteBackend`s (see the module docstring)."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        router: PrefixRouter | None = None,
        health_interval: float = 5.0,
        eject_after: int = 2,
        health_timeout: float = 5.0,
        api_key: str | None = None,
    ) -> None:
        """`api_key`: the replicas' key (`vllm serve --api-key`), sent on every request."""
        if not urls:
            raise ValueError("a replica pool needs at least one URL")
        self.replicas = [
            Replica(
                RemoteBackend(
                    url, name=f"replica {i}", api_key=api_key, health_timeout=health_timeout
                )
            )
            for i, url in enumerate(urls)
        ]
        self.router = router or PrefixRouter()
        self.health_interval = health_interval
        self.eject_after = eject_after
        self._model_name = ""
        self._max_model_len = 0
        self._health_task: asyncio.Task[None] | None = None
        self._admitted_event: asyncio.Event | None = None
        self._fatal: Exception | None = None
        # request id -> replica index, for abort() after the stream was closed.
        self._recent: OrderedDict[str, int] = OrderedDict()

    # -- EngineBackend properties ---------------------------------------------------------
    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def max_model_len(self) -> int:
        """The smallest admitted context; the last known one while none is admitted (a request
        queued then is refused by readiness, not as too long for a 0-token context)."""
        lens = [r.backend.max_model_len for r in self.replicas if r.admitted]
        if lens:
            self._max_model_len = min(lens)
        return self._max_model_len

    @property
    def merges_while_unread(self) -> bool:
        """No replica's stream does (RemoteBackend)."""
        return False

    @property
    def supports_grammar(self) -> bool:
        """Whether grammars can be enforced: some replica loads a tokenizer to compile them.

        Without one, tool_choice "auto" is served without a grammar (calls are checked after
        generation instead) rather than refused.
        """
        return any(r.backend.has_tokenizer for r in self.replicas if r.admitted)

    @property
    def ready(self) -> bool:
        return any(r.admitted for r in self.replicas)

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Start every reachable replica; return once one is admitted.

        A replica with another vocabulary or model raises ReplicaMismatch (a deployment error);
        unreachable ones are retried by the health loop.
        """
        if self._admitted_event is None:
            self._admitted_event = asyncio.Event()
            await asyncio.gather(*(self._try_admit(r) for r in self.replicas))
            if self._fatal is not None:
                raise self._fatal
            self._health_task = asyncio.create_task(self._health_loop())
        while not self._admitted_event.is_set():
            await self._admitted_event.wait()
            if self._fatal is not None:
                raise self._fatal

    async def _try_admit(self, replica: Replica) -> None:
        try:
            await replica.backend.start()
        except (ReplicaDown, OSError) as exc:
            logger.warning("replica %s not admitted: %s", replica.url, exc)
            return
        except ReplicaMismatch as exc:
            self._refuse(exc)
            return
        except Exception as exc:  # noqa: BLE001 - e.g. an HTTP error during the checks
            logger.warning("replica %s not admitted: %r", replica.url, exc)
            return
        name = replica.backend.model_name
        if self._model_name and name != self._model_name:
            replica.backend.started = False
            self._refuse(
                ReplicaMismatch(
                    f"replica {replica.url} serves {name!r} while the pool serves "
                    f"{self._model_name!r}"
                )
            )
            return
        self._model_name = name
        self.router.forget(self.replicas.index(replica))
        replica.admitted = True
        replica.failures = 0
        logger.info("replica %s admitted", replica.url)
        if self._admitted_event is not None:
            self._admitted_event.set()

    def _refuse(self, exc: ReplicaMismatch) -> None:
        """A wrong deployment: fatal during start-up; later the replica just stays out."""
        logger.error("%s", exc)
        if self._health_task is None and self._fatal is None:
            self._fatal = exc

    def _eject(self, replica: Replica, reason: object) -> None:
        if replica.admitted:
            logger.warning("replica %s ejected: %s", replica.url, reason)
        replica.admitted = False
        replica.backend.started = False

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval)
            try:
                await asyncio.gather(*(self.check(r) for r in self.replicas))
            except Exception:  # noqa: BLE001 - the loop must outlive any one bad round
                logger.exception("replica health round failed")

    async def check(self, replica: Replica) -> None:
        """One health round for one replica: probe the admitted, try to re-admit the others."""
        if not replica.admitted:
            await self._try_admit(replica)
            return
        if await replica.backend.check_health():
            replica.failures = 0
            return
        replica.failures += 1
        if replica.failures >= self.eject_after:
            self._eject(replica, f"{replica.failures} failed health checks")

    async def shutdown(self) -> None:
        task, self._health_task = self._health_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(r.backend.shutdown() for r in self.replicas))

    # -- generation ----------------------------------------------------------------------
    async def generate(
        self, prompt_token_ids: list[int], sampling: SamplingConfig, request_id: str
    ) -> AsyncIterator[GenerationChunk]:
        """Route, stream, and retry elsewhere while nothing was yielded yet."""
        tried: set[int] = set()
        last: EngineNotReady | None = None
        while True:
            index = self._route(prompt_token_ids, sampling, tried)
            if index is None:
                break
            tried.add(index)
            replica = self.replicas[index]
            self._remember(request_id, index)
            sent = False
            try:
                stream = replica.backend.generate(prompt_token_ids, sampling, request_id)
                async with contextlib.aclosing(stream):
                    async for chunk in stream:
                        sent = True
                        yield chunk
                return
            except ReplicaDown as exc:
                replica.errors += 1
                self._eject(replica, exc)
                last = exc
            except ReplicaBusy as exc:
                replica.errors += 1
                last = exc
            except EngineError:
                replica.errors += 1
                raise
            if sent:  # defensive: the remote backend raises EngineError once tokens flowed
                raise EngineError(f"{replica.backend.name} failed mid-stream")
        if isinstance(last, ReplicaBusy):
            raise ReplicaBusy(f"every replica is busy: {last}", last.retry_after)
        raise last or EngineNotReady("no healthy replica")

    def _route(
        self, prompt_token_ids: list[int], sampling: SamplingConfig, tried: set[int]
    ) -> int | None:
        admitted = {i: r for i, r in enumerate(self.replicas) if r.admitted}
        if sampling.structured_outputs is not None:
            able = {i: r for i, r in admitted.items() if r.backend.has_tokenizer}
            if admitted and not able:
                raise GrammarUnsupported(
                    "tool_choice/response_format need a grammar, and no replica of this model "
                    "loads a tokenizer to compile one (--skip-tokenizer-init/--tokens-only)"
                )
            admitted = able
        loads = {i: r.backend.in_flight for i, r in admitted.items()}
        key = sampling.affinity_key
        choice = self.router.choose(prompt_token_ids, loads, tried, key)
        if choice is None:
            return None
        replica = self.replicas[choice.replica]
        replica.requests += 1
        if choice.affinity_hit:
            replica.affinity_hits += 1
        self.router.record(prompt_token_ids, choice.replica, key)
        return choice.replica

    def _remember(self, request_id: str, index: int) -> None:
        self._recent[request_id] = index
        self._recent.move_to_end(request_id)
        while len(self._recent) > 4096:
            self._recent.popitem(last=False)

    async def abort(self, request_id: str) -> None:
        index = self._recent.pop(request_id, None)
        if index is not None:
            await self.replicas[index].backend.abort(request_id)

    # -- metrics -------------------------------------------------------------------------
    def collect(self) -> Iterable[Metric]:
        """Per-replica metrics for a Prometheus registry (`registry.register(pool)`)."""
        labels = ["replica"]
        in_flight = GaugeMetricFamily(
            "harmony_proxy_replica_in_flight", "Requests streaming from the replica.", labels=labels
        )
        healthy = GaugeMetricFamily(
            "harmony_proxy_replica_healthy", "1 while the replica is admitted.", labels=labels
        )
        requests = CounterMetricFamily(
            "harmony_proxy_replica_requests", "Requests routed to the replica.", labels=labels
        )
        errors = CounterMetricFamily(
            "harmony_proxy_replica_errors",
            "Requests the replica failed (unreachable, busy, or failed mid-stream).",
            labels=labels,
        )
        hits = CounterMetricFamily(
            "harmony_proxy_replica_affinity_hits",
            "Requests routed to the replica because it held their prompt's prefix.",
            labels=labels,
        )
        for r in self.replicas:
            in_flight.add_metric([r.url], r.backend.in_flight)
            healthy.add_metric([r.url], 1.0 if r.admitted else 0.0)
            requests.add_metric([r.url], r.requests)
            errors.add_metric([r.url], r.errors)
            hits.add_metric([r.url], r.affinity_hits)
        return [in_flight, healthy, requests, errors, hits]
