"""Costs that hostile input must not blow up: identifier collisions, stop strings, cache bytes
and schema depth. Each fix is checked twice: it behaves exactly as the code it replaced (a
differential test against a copy of the old algorithm) and its cost no longer grows with the
input (measured by counted steps where possible, CPU time with generous bounds otherwise)."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.core.tool_names import ToolNames, _identifier

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
