"""Costs that hostile input must not blow up: identifier collisions, stop strings, cache bytes
and schema depth. Each fix is checked twice: it behaves exactly as the code it replaced (a
differential test against a copy of the old algorithm) and its cost no longer grows with the
input (measured by counted steps where possible, CPU time with generous bounds otherwise)."""

from __future__ import annotations

import dataclasses
import random
import string
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.core import grammar, tools
from proxy.core.assembler import DeltaAssembler
from proxy.core.bounded_cache import BoundedCache, MiB, NotCached, cache_hits_only, weight
from proxy.core.conversation import load_encoding
from proxy.core.errors import InvalidRequest
from proxy.core.events import CallStart, Event, Text
from proxy.core.gate import Limits, check_request
from proxy.core.grammar import GrammarError, canonical_json, schema_depth
from proxy.core.request import GenerationRequest, UserText
from proxy.core.stop_strings import FinalText, StopMatcher
from proxy.core.tool_names import ToolNames, _identifier
from proxy.core.tools import function_tool, validate_schemas
from tests.proxy.helpers import toks

MAX_SCHEMA_DEPTH = Limits().max_schema_depth

STOP_TOKENS = (200002, 200012, 199999)

# ------------------------------------------------------------------ 1. identifier collisions


class OldToolNames(ToolNames):
    """ToolNames with the identifier probe it had before (from `base_2` every time)."""

    def to_model(self, client_name: str) -> str:
        if client_name in self._to_model:
            return self._to_model[client_name]
        ident = base = _identifier(client_name)
        suffix = 2
        while ident in self._to_client:
            ident, suffix = f"{base}_{suffix}", suffix + 1
        self._to_model[client_name] = ident
        self._to_client[ident] = client_name
        return ident


class CountingDict(dict):
    """Counts membership probes: the collision loop's unit of work."""

    probes = 0

    def __contains__(self, key: object) -> bool:
        CountingDict.probes += 1
        return super().__contains__(key)


# Names that collide a lot: separators collapse to `_`, digits make literal `x_2` names.
_NAMES = st.text(alphabet="ab_-./2 3", max_size=5)


@settings(max_examples=400, deadline=None)
@given(declared=st.lists(_NAMES, max_size=8, unique=True), history=st.lists(_NAMES, max_size=60))
def test_identifiers_are_those_of_the_old_probe_for_any_names(
    declared: list[str], history: list[str]
) -> None:
    new, old = ToolNames(declared), OldToolNames(declared)
    for name in history:
        assert new.to_model(name) == old.to_model(name)
    assert new._to_client == old._to_client
    assert new._declared == old._declared


def test_a_client_name_that_is_a_generated_identifier_is_skipped() -> None:
    names, old = ToolNames(["a-b", "a_b_2"]), OldToolNames(["a-b", "a_b_2"])
    order = ["a.b", "a/b", "a_b_3", "a b", "a_b_6", "a:b", "a_b_3_2", "a+b_3"]
    expected = ["a_b_3", "a_b_4", "a_b_3_2", "a_b_5", "a_b_6", "a_b_7", "a_b_3_2_2", "a_b_3_3"]
    assert [names.to_model(n) for n in order] == expected
    assert [old.to_model(n) for n in order] == expected
    assert names.to_model("a-b") == "a_b" and names.to_model("a_b_2") == "a_b_2"


def _colliding(n: int) -> list[str]:
    """`n` distinct names that all become the identifier `a_b`."""
    return [f"a{chr(0x4E00 + i)}b" for i in range(n)]


def _probes(n: int, cls: type[ToolNames] = ToolNames) -> int:
    names = cls()
    names._to_client = CountingDict()
    CountingDict.probes = 0
    for name in _colliding(n):
        names.to_model(name)
    return CountingDict.probes


def test_colliding_names_cost_constant_probes_each() -> None:
    small, large = _probes(2_000), _probes(20_000)
    assert large <= 3 * 20_000  # the old probe: ~2 * 10^8 at 20,000 names
    assert large / small < 11  # linear: 10x the names, 10x the work (quadratic: 100x)
    assert _probes(300, OldToolNames) > 40_000  # (the old probe was quadratic)


def test_literal_suffixed_names_are_skipped_once_in_all() -> None:
    """Client names `a_b_2` .. `a_b_10001` take the suffixes the colliding names would get:
    the counter skips them once, not once per colliding name."""
    names = ToolNames([f"a_b_{k}" for k in range(2, 10_002)])
    names._to_client = CountingDict(names._to_client)
    CountingDict.probes = 0
    assert [names.to_model(n) for n in _colliding(3)] == ["a_b", "a_b_10002", "a_b_10003"]
    for name in _colliding(10_000)[3:]:
        names.to_model(name)
    assert CountingDict.probes <= 3 * 20_000  # the old probe: 10^8


def test_twenty_thousand_colliding_names_take_well_under_a_second() -> None:
    names = ToolNames()
    start = time.process_time()
    for name in _colliding(20_000):
        names.to_model(name)
    assert time.process_time() - start < 2.0  # measured 0.04 s; the old probe: 39 s
    assert names.to_model(_colliding(20_000)[-1]) == "a_b_20000"


# ------------------------------------------------------------------ 2. stop strings


class OldFinalText:
    """The assembler's final-text release as it was: the whole text, searched every time."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = stops
        self.text = ""
        self.sent = 0

    def add(self, text: str) -> None:
        self.text += text

    def release(self, hold: bool) -> tuple[str, bool]:
        text, sent = self.text, self.sent
        if sent >= len(text):
            return "", False
        cut = None
        for stop in self.stops:
            at = text.find(stop, max(0, sent - len(stop) + 1))
            if at != -1 and (cut is None or at < cut):
                cut = at
        if cut is not None:
            self.sent = len(text)
            return (text[sent:cut] if cut > sent else ""), True
        end = len(text)
        if hold and self.stops:
            end = max(sent, len(text) - _old_longest_partial_stop(text, self.stops))
        self.sent = end
        return text[sent:end], False


def _old_longest_partial_stop(text: str, stops: tuple[str, ...]) -> int:
    best = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:k]):
                best = k
                break
    return best


# Small alphabets make overlapping, self-similar stop strings (`aab`, `abab`) and matches common.
_STOPS = st.lists(st.text(alphabet="ab", min_size=1, max_size=6), min_size=1, max_size=4)
_OPS = st.lists(
    st.one_of(st.text(alphabet="abc", max_size=7).map(lambda t: ("add", t)), st.just(("flush",))),
    max_size=40,
)


@settings(max_examples=1500, deadline=None)
@given(stops=_STOPS, ops=_OPS)
def test_final_text_sends_holds_and_cuts_exactly_as_before(
    stops: list[str], ops: list[tuple[str, ...]]
) -> None:
    """Every release, including after a stop (the text may still grow) and after a flush that
    sent a stop string's beginning (a match then starts in sent text)."""
    new, old = FinalText(tuple(StopMatcher(s) for s in stops)), OldFinalText(tuple(stops))
    for op in ops:
        if op[0] == "add":  # as DeltaAssembler._text: add, then release holding back
            new.add(op[1])
            old.add(op[1])
            assert new.release(hold=True) == old.release(hold=True)
        else:  # another message or a call starts: everything unsent goes
            assert new.release(hold=False) == old.release(hold=False)


@pytest.mark.parametrize(
    "stop,text",
    [
        ("aab", "aaab"),
        ("abab", "abaabab"),
        ("aaaa", "aaaaaaaa"),
        ("abcabd", "abcabcabd"),
        ("a" * 50 + "b", "a" * 200 + "b"),
    ],
)
def test_self_similar_stop_strings_cut_where_find_does(stop: str, text: str) -> None:
    for size in (1, 2, 3, 5):
        new, old = FinalText((StopMatcher(stop),)), OldFinalText((stop,))
        for i in range(0, len(text), size):
            new.add(text[i : i + size])
            old.add(text[i : i + size])
            assert new.release(hold=True) == old.release(hold=True)


class OldDeltaAssembler(DeltaAssembler):
    """DeltaAssembler with the final-text code it had before (whole text, partial probe)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._final_text = ""
        self._final_sent = 0

    def _text(self, index: int, kind: str, text: str) -> None:
        if index != self._final_item:
            self._release_final(hold=False)
        if kind != "reasoning" and self._position is not None:
            if not self.content_positions or self.content_positions[-1] != self._position:
                self.content_positions.append(self._position)
        if kind == "reasoning":
            self._events.append(Text("reasoning", index, text))
        elif kind == "final":
            if index != self._final_item:
                self._final_item, self._final_text, self._final_sent = index, "", 0
            self._final_text += text
            self._release_final(hold=True)
        else:
            self._events.append(Text("content", index, text, final=False))

    def _release_final(self, hold: bool) -> None:
        text, sent = self._final_text, self._final_sent
        if sent >= len(text):
            return
        cut = None
        for stop in self._stop_strings:
            at = text.find(stop, max(0, sent - len(stop) + 1))
            if at != -1 and (cut is None or at < cut):
                cut = at
        if cut is not None:
            if cut > sent:
                self._events.append(Text("content", self._final_item, text[sent:cut]))
            self._final_sent = len(text)
            self.stopped_by_string = self.done = True
            return
        end = len(text)
        if hold and self._stop_strings:
            end = max(sent, len(text) - _old_longest_partial_stop(text, self._stop_strings))
        if end > sent:
            self._events.append(Text("content", self._final_item, text[sent:end]))
        self._final_sent = end


def _run(cls: type[DeltaAssembler], tokens: list[int], sizes: list[int], **kw: Any) -> list[Any]:
    assembler = cls(load_encoding(), ToolNames(["get_weather"]), stop_token_ids=STOP_TOKENS, **kw)
    steps: list[Any] = []
    i = 0
    for size in sizes:
        if i >= len(tokens):
            break
        steps.append(_plain(assembler.feed(tokens[i : i + size])))
        steps.append(list(assembler.content_positions))
        i += size
    if i < len(tokens):
        steps.append(_plain(assembler.feed(tokens[i:])))
    steps.append(_plain(assembler.finish()))
    steps.append((assembler.done, assembler.stopped_by_string, assembler.tool_call_recoveries))
    return steps


def _plain(events: list[Event]) -> list[Any]:
    """Events comparable across runs (call ids are random)."""
    plain = [dataclasses.asdict(e) for e in events]
    for event, fields in zip(events, plain, strict=True):
        if isinstance(event, CallStart):
            fields["id"] = ""
    return plain


_WORDS = st.text(alphabet="ab .\n", min_size=1, max_size=30)
_MESSAGE = st.one_of(
    _WORDS.map(lambda t: f"<|channel|>final<|message|>{t}<|end|>"),
    _WORDS.map(lambda t: f"<|channel|>analysis<|message|>{t}<|end|>"),
    _WORDS.map(lambda t: f"<|channel|>commentary<|message|>{t}<|end|>"),
    st.just('<|channel|>commentary to=functions.get_weather<|message|>{"city":"a"}<|call|>'),
)


@settings(max_examples=400, deadline=None)
@given(
    messages=st.lists(_MESSAGE, min_size=1, max_size=4),
    stops=st.lists(st.text(alphabet="ab .", min_size=1, max_size=5), max_size=4),
    cuts=st.lists(st.tuples(st.integers(0, 200), st.integers(1, 6)), max_size=3),
    sizes=st.lists(st.integers(1, 4), max_size=40),
    enforced=st.booleans(),
    cut_short=st.booleans(),
)
def test_the_assembler_sends_the_same_events_as_before(
    messages: list[str],
    stops: list[str],
    cuts: list[tuple[int, int]],
    sizes: list[int],
    enforced: bool,
    cut_short: bool,
) -> None:
    script = "<|start|>assistant".join(messages)
    if cut_short:  # no <|end|>: finish() flushes what was held back
        script = script.removesuffix("<|end|>")
    # Stop strings taken from the answers themselves match, often several in one token.
    answers = "".join(m.split("<|message|>")[1].split("<|")[0] for m in messages)
    stops += [answers[at % len(answers) :][:size] for at, size in cuts]
    tokens = toks(script)
    kw = {"stop_strings": tuple(stops), "calls_enforced": enforced}
    assert _run(DeltaAssembler, tokens, sizes, **kw) == _run(OldDeltaAssembler, tokens, sizes, **kw)


def _answer_tokens(n: int, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    words = " ".join(
        "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 8)))
        for _ in range(n)
    )
    answer = toks(words)[:n]
    return toks("<|channel|>final<|message|>") + answer


def _quarter_times(cls: type[DeltaAssembler], stops: tuple[str, ...], tokens: list[int]) -> list:
    """CPU time of each quarter of `tokens`, fed one by one (after a warm-up of the parser)."""
    warm = cls(load_encoding(), ToolNames(), stop_token_ids=STOP_TOKENS)
    for token in tokens[:500]:
        warm.feed([token])
    assembler = cls(load_encoding(), ToolNames(), stop_token_ids=STOP_TOKENS, stop_strings=stops)
    quarter = len(tokens) // 4
    times = []
    for q in range(4):
        start = time.process_time()
        for token in tokens[q * quarter : (q + 1) * quarter]:
            assembler.feed([token])
        times.append(time.process_time() - start)
    assert not assembler.stopped_by_string
    return times


def test_per_token_cost_does_not_grow_with_the_answer_or_the_stop_strings() -> None:
    """4 stop strings of 64 KiB, 4,000 tokens: the old code probed every prefix length of
    every stop string per token (measured: 19 s, the last tokens 8x the first); the matchers
    cost the token's own text (0.03 s)."""
    rng = random.Random(1)
    stops = tuple(
        "".join(rng.choice(string.ascii_lowercase + " ") for _ in range(64 * 1024))
        for _ in range(4)
    )
    times = _quarter_times(DeltaAssembler, stops, _answer_tokens(4_000))
    assert sum(times) < 2.0
    assert times[3] < 3 * times[0] + 0.05  # flat: the last tokens cost what the first did


def test_a_stop_string_that_keeps_matching_costs_constant_time_per_token() -> None:
    """Text that is always the beginning of 1 MiB stop strings: held back throughout (40,000
    characters by the end, kept in pieces, not copied per token), with KMP's longest
    fallbacks. Still constant work per character."""
    stop = "ab" * (1 << 19) + "!"
    tokens = toks("<|channel|>final<|message|>" + "ab" * 20_000)
    times = _quarter_times(DeltaAssembler, (stop, "b" + stop, "a" * (1 << 20), "b!"), tokens)
    assert sum(times) < 2.0
    assert times[3] < 3 * times[0] + 0.05


# ------------------------------------------------------------------ 3. caches bounded in bytes


def test_a_cache_of_large_unique_entries_stays_within_its_byte_budget() -> None:
    calls: list[str] = []

    def work(key: str) -> str:
        calls.append(key)
        return key.upper()

    cache = BoundedCache(work, max_bytes=1 * MiB, max_entry_bytes=256 * 1024)
    for i in range(200):
        key = f"{i:04d}" + "x" * 50_000  # ~100 KB per entry with its value
        assert cache(key) == key.upper()
        assert cache.nbytes <= cache.max_bytes
    assert 5 <= len(cache) <= 10
    assert cache.nbytes == sum(weight((k,)) + weight(v) for k, (v, _) in _entries(cache))
    calls.clear()
    cache(f"{199:04d}" + "x" * 50_000)  # the most recent one is still there
    cache(f"{0:04d}" + "x" * 50_000)  # the oldest was evicted
    assert [c[:4] for c in calls] == ["0000"]


def _entries(cache: BoundedCache) -> list[tuple[str, tuple[Any, int]]]:
    return [(args[0], entry) for args, entry in cache._entries.items()]


def test_an_oversized_entry_is_computed_but_not_cached() -> None:
    calls = []
    cache = BoundedCache(lambda s: calls.append(s) or len(s), 1 * MiB, 256 * 1024)
    big = "y" * (300 * 1024)
    assert cache(big) == cache(big) == len(big)
    assert len(calls) == 2 and len(cache) == 0 and cache.nbytes == 0
    assert cache("small") == 5 and cache("small") == 5 and len(calls) == 3 and len(cache) == 1


def test_the_least_recently_used_entry_goes_first() -> None:
    size = weight(("a" * 1000,)) + weight(None)
    cache = BoundedCache(lambda s: None, max_bytes=3 * size + 10, max_entry_bytes=MiB)
    a, b, c, d = ("a" * 1000, "b" * 1000, "c" * 1000, "d" * 1000)
    for key in (a, b, c, a, d):  # touching `a` makes `b` the oldest
        cache(key)
    assert sorted(k[0] for k, _ in _entries(cache)) == ["a", "c", "d"]


def test_inside_cache_hits_only_a_miss_raises_and_computes_nothing() -> None:
    """What lets a request be planned on the event loop only while its schema checks and grammar
    are cached (proxy/core/planning.py `plan_on_loop`)."""
    calls = []
    cache = BoundedCache(lambda s: calls.append(s) or s.upper(), 1 * MiB, 256 * 1024)
    assert cache("known") == "KNOWN"
    with cache_hits_only():
        assert cache("known") == "KNOWN"  # a hit is served
        with pytest.raises(NotCached):
            cache("new")
        with pytest.raises(NotCached):  # an entry too large to keep always misses
            cache("z" * (300 * 1024))
    assert calls == ["known"]
    assert cache("new") == "NEW"  # outside the block, misses compute again
    # The flag is per thread: another thread computes as usual meanwhile.
    results = []
    with cache_hits_only():
        worker = threading.Thread(target=lambda: results.append(cache("other")))
        worker.start()
        worker.join()
    assert results == ["OTHER"]


def test_the_cache_is_consistent_under_threads() -> None:
    cache = BoundedCache(lambda s: s * 2, max_bytes=64 * 1024, max_entry_bytes=16 * 1024)

    def hammer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(2_000):
            key = str(rng.randrange(300)) * rng.randint(1, 500)
            assert cache(key) == key * 2

    threads = [threading.Thread(target=hammer, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.nbytes == sum(size for _, (_, size) in _entries(cache)) <= cache.max_bytes


def test_the_schema_and_grammar_caches_are_byte_bounded_within_64_mib() -> None:
    caches = [
        grammar._cached_tag,
        grammar._schema_error,
        grammar._regex_readable,
        grammar.lark_to_ebnf,
        tools._schema_problem,
    ]
    assert all(isinstance(c, BoundedCache) for c in caches)
    assert sum(c.max_bytes for c in caches) <= 64 * MiB
    assert all(c.max_entry_bytes <= MiB for c in caches)
    grammar._cached_tag.cache_clear()  # benchmarks/bench_grammar.py resets it between runs


def _tool(name: str, schema: Any) -> tools.FunctionTool:
    """The tool as a request's path checks it: parsed, gated, then its schema validated."""
    tool = function_tool(
        name,
        "",
        schema,
        strict=True,
        param="tools[0]",
        name_param="tools[0].function.name",
        parameters_param="tools[0].function.parameters",
    )
    check_request(GenerationRequest("m", (UserText("Hi", "messages[0]"),), (tool,)), Limits())
    return validate_schemas((tool,))[0]


def test_many_unique_large_tool_schemas_keep_the_schema_cache_within_budget() -> None:
    problem = tools._schema_problem
    problem.cache_clear()
    props = {f"p{j}": {"type": "string", "description": "d" * 2_000} for j in range(40)}
    for i in range(120):  # ~80 KiB of schema each: ~10 MiB of unique schemas, 8 MiB of budget
        _tool(f"f{i}", {"type": "object", "title": f"t{i}", "properties": props})
        assert problem.nbytes <= problem.max_bytes
    assert problem.nbytes > problem.max_bytes // 2
    before = len(problem)
    huge = {"type": "object", "properties": props, "description": "h" * 300 * 1024}
    _tool("huge", huge)  # checked, but over the entry limit: not kept
    assert len(problem) == before


# ------------------------------------------------------------------ 4. deep schemas


def _deep(n: int, wrap: Any = lambda s: {"type": "object", "properties": {"a": s}}) -> Any:
    value: Any = {"type": "object"}
    for _ in range(n):
        value = wrap(value)
    return value


def test_schema_depth_counts_containers_iteratively() -> None:
    assert schema_depth(3, 10) == 0
    assert schema_depth({}, 10) == 1
    assert schema_depth([[]], 10) == 2
    assert schema_depth({"a": [{"b": 1}], "c": {}}, 10) == 3
    assert schema_depth(_deep(5), 100) == 11  # 5 x (schema, properties) + the innermost
    assert schema_depth(_deep(5), 4) == 5  # past the limit: limit + 1


def test_schema_depth_stops_at_the_limit_on_a_very_deep_value() -> None:
    deep = _deep(100_000)
    start = time.process_time()
    assert schema_depth(deep, MAX_SCHEMA_DEPTH) == MAX_SCHEMA_DEPTH + 1
    assert time.process_time() - start < 0.1


def _deep_list(n: int) -> Any:
    value: Any = []
    for _ in range(n):
        value = [value]
    return value


@pytest.mark.parametrize(
    "schema",
    [
        _deep(100_000),
        {"type": "object", "properties": {"x": _deep(100_000, lambda s: {"items": s})}},
        {"type": "object", "enum": _deep_list(100_000)},
        {"type": _deep_list(100_000)},  # the error message would show it
    ],
    ids=["properties", "items", "enum", "type"],
)
def test_a_schema_nested_100000_deep_is_a_400_not_a_recursion_error(schema: Any) -> None:
    with pytest.raises(InvalidRequest) as caught:
        _tool("f", schema)
    assert caught.value.status_code == 400
    assert caught.value.param == "tools[0].function.parameters"
    # (a `type` that is no type at all is refused for that first, without a recursive repr)
    assert f"more than {MAX_SCHEMA_DEPTH} levels" in caught.value.message or "got a list" in (
        caught.value.message
    )


def test_a_schema_at_the_depth_limit_is_accepted() -> None:
    items = _deep(MAX_SCHEMA_DEPTH - 3, lambda s: {"type": "array", "items": s})
    schema = {"type": "object", "properties": {"a": items}}
    assert schema_depth(schema, MAX_SCHEMA_DEPTH) == MAX_SCHEMA_DEPTH
    assert _tool("f", schema).schema_json.startswith("{")
    with pytest.raises(InvalidRequest):
        _tool("g", {"type": "object", "properties": {"a": {"items": items}}})


def test_canonical_json_refuses_a_very_deep_value_without_recursing() -> None:
    with pytest.raises(GrammarError, match="nested more than"):
        canonical_json(_deep(100_000))
    assert canonical_json({"b": [1], "a": {}}) == '{"a":{},"b":[1]}'
