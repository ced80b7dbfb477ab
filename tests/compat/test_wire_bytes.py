"""The server's bytes on the wire are those recorded from the code before the core's refactor.

Every case of `wire_cases.py` (chat completions and the Responses API, streamed and not, tools,
faults, cuts, malformed model output, 4xx bodies) runs against the current code on a real
uvicorn server over a scripted engine; its normalised exchanges (status, headers, body bytes)
must equal `wire_bytes.json`, which `python -m tests.compat.record_wire` wrote from the
reference checkout. A difference is shown as a line diff of the body (one SSE event per line)
with the first differing JSON path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.compat.wire_cases import CASES, FIXTURE, Case, WireServer, describe_difference


@pytest.fixture(scope="module")
def recorded() -> dict[str, list[dict[str, Any]]]:
    return json.loads(FIXTURE.read_text())["cases"]


@pytest.fixture(scope="module")
def wire_server() -> Iterator[WireServer]:
    server = WireServer()
    server.start()
    yield server
    server.stop()


def test_the_fixture_holds_exactly_the_cases(recorded: dict[str, list[dict[str, Any]]]) -> None:
    assert sorted(recorded) == sorted(case.name for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_wire_bytes_are_unchanged(
    case: Case, wire_server: WireServer, recorded: dict[str, list[dict[str, Any]]]
) -> None:
    if case.name not in recorded:
        pytest.fail(f"{case.name} is not in {FIXTURE.name}: record it on the reference code")
    expected = recorded[case.name]
    got = wire_server.run(case)
    if got != expected:
        pytest.fail(f"{case.name}:\n{describe_difference(expected, got)}", pytrace=False)
