"""A thread-safe LRU cache bounded by the bytes of its keys and values, not by its entry count.

`functools.lru_cache(maxsize=512)` keyed by whole tool sets let a dozen large, unique tool sets
grow the proxy by hundreds of MiB. Here each entry is weighed (`sys.getsizeof` over its strings,
tuples and dataclasses), the least recently used entries are dropped to stay within the budget,
and an entry heavier than `max_entry_bytes` is computed but never kept. (cachetools, present
in the environment only as another package's dependency, weighs values but not keys and needs
a lock of its own: not worth a new runtime dependency for these few lines.)

Inside `cache_hits_only()`, a miss raises `NotCached` instead of computing: a request is
planned on the event loop only while everything slow it needs (a schema check, a grammar
build) is already cached, and in the plan executor otherwise (proxy/core/planning.py).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

V = TypeVar("V")
MiB = 1 << 20

_HITS_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("cache_hits_only", default=False)


class NotCached(Exception):
    """A cached function missed inside `cache_hits_only()`: the caller does the work elsewhere."""


def hits_only() -> bool:
    """Whether this thread or task is inside `cache_hits_only()`."""
    return _HITS_ONLY.get()


@contextlib.contextmanager
def cache_hits_only() -> Iterator[None]:
    """Within this block (this thread or task), a `BoundedCache` miss raises `NotCached`."""
    token = _HITS_ONLY.set(True)
    try:
        yield
    finally:
        _HITS_ONLY.reset(token)


def weight(value: object) -> int:
    """Bytes held by `value`: itself plus, iteratively, its items and dataclass fields."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        total += sys.getsizeof(item)
        if isinstance(item, tuple | list | frozenset | set):
            stack.extend(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item))
    return total


class BoundedCache(Generic[V]):
    """`function(*args)` memoised by `args`, within `max_bytes` of keys and values in all."""

    def __init__(self, function: Callable[..., V], max_bytes: int, max_entry_bytes: int) -> None:
        functools.update_wrapper(self, function)
        self._function = function
        self.max_bytes = max_bytes
        self.max_entry_bytes = min(max_entry_bytes, max_bytes)
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.nbytes = 0

    def __call__(self, *args: Hashable) -> V:
        with self._lock:
            entry = self._entries.get(args)
            if entry is not None:
                self._entries.move_to_end(args)
                return entry[0]
        if _HITS_ONLY.get():
            raise NotCached(self.__name__)
        value = self._function(*args)  # outside the lock: two threads may both compute it
        size = weight(args) + weight(value)
        if size > self.max_entry_bytes:
            return value
        with self._lock:
            old = self._entries.pop(args, None)
            if old is not None:
                self.nbytes -= old[1]
            self._entries[args] = (value, size)
            self.nbytes += size
            while self.nbytes > self.max_bytes:
                self.nbytes -= self._entries.popitem(last=False)[1][1]
        return value

    def __len__(self) -> int:
        return len(self._entries)

    def cache_clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.nbytes = 0


def bounded_cache(
    max_bytes: int, max_entry_bytes: int
) -> Callable[[Callable[..., V]], BoundedCache[V]]:
    """Decorator: `BoundedCache(function, max_bytes, max_entry_bytes)` (positional args only)."""

    def wrap(function: Callable[..., V]) -> BoundedCache[V]:
        return BoundedCache(function, max_bytes, max_entry_bytes)

    return wrap
