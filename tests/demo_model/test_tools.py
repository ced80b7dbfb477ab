"""Tool use that depends on the request: held-out tool sets on the real engine, greedy, raw model.

No grammar is involved here (as with structured tool calls turned off): the model itself must
decide whether a declared tool fits, address it by the identifier the request declared, fill
its arguments from the user's words, and answer from a tool result instead of calling again.
The tool names, descriptions and user texts below never occur in training (test_data.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest

from harmony import HarmonyEncodingName, Role, load_harmony_encoding
from proxy.backends.base import DEFAULT_STOP_TOKEN_IDS, SamplingConfig
from proxy.demo_model.evaluate import called_names
from proxy.demo_model.scenarios import SCENARIOS, Scenario, render_request

ENC = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
_ids = itertools.count()
# The committed demo weights predate the tool-use data (see train.py's docstring): these
# tests describe the target of issue 7 item 3 and pass once a retrained model reaches it.
NOT_YET_TRAINED = pytest.mark.xfail(
    reason="demo weights not yet retrained for request-dependent tool use (issue 7 item 3)",
    strict=False,
)


@pytest.fixture(scope="module")
def outcomes(background_loop, vllm_backend) -> dict[str, tuple[Scenario, str, list]]:
    """Every scenario completed once, greedily, in one engine batch: label -> outcome."""

    async def one(scenario: Scenario) -> tuple[Scenario, str, list]:
        prompt, _ = render_request(scenario.request)
        sampling = SamplingConfig(
            max_tokens=200, temperature=0.0, stop_token_ids=DEFAULT_STOP_TOKEN_IDS
        )
        tokens: list[int] = []
        async for chunk in vllm_backend.generate(prompt, sampling, f"tools-{next(_ids)}"):
            tokens.extend(chunk.token_ids)
        messages = ENC.parse_messages_from_completion_tokens(tokens, Role.ASSISTANT)
        return scenario, ENC.decode(tokens), messages

    async def run() -> list[tuple[Scenario, str, list]]:
        return list(await asyncio.gather(*(one(s) for s in SCENARIOS)))

    return {s.label: (s, text, m) for s, text, m in background_loop.run(run(), timeout=300)}


def _text(message) -> str:
    return "".join(part.text for part in message.content)


def _declared(scenario: Scenario) -> set[str]:
    return set(render_request(scenario.request)[1])


@pytest.mark.engine
@NOT_YET_TRAINED
@pytest.mark.parametrize(
    "label", [s.label for s in SCENARIOS if s.expected.startswith("call:")], ids=str
)
def test_the_fitting_declared_tool_is_called_with_the_users_value(outcomes, label):
    scenario, raw, messages = outcomes[label]
    call = messages[-1]
    assert call.recipient == f"functions.{scenario.expected.removeprefix('call:')}", raw
    arguments = json.loads(_text(call))
    assert all(value in json.dumps(arguments) for value in scenario.must_contain), raw


@pytest.mark.engine
@NOT_YET_TRAINED
@pytest.mark.parametrize("label", [s.label for s in SCENARIOS if s.expected == "final"], ids=str)
def test_answers_directly_when_no_tool_fits_or_a_result_is_in(outcomes, label):
    scenario, raw, messages = outcomes[label]
    assert [m.channel for m in messages] == ["analysis", "final"], raw
    assert all(word in _text(messages[-1]) for word in scenario.must_contain), raw


@pytest.mark.engine
def test_no_scenario_calls_an_undeclared_tool(outcomes):
    for scenario, raw, _ in outcomes.values():
        assert set(called_names(raw)) <= _declared(scenario), raw
