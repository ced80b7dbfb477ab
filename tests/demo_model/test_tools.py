"""Tool use that depends on the request, as clients get it: the real server on the real engine.

Under `tool_choice: "auto"` the server's grammar lets a call address only a declared function,
with arguments matching its schema. What the demo model itself must get right is the rest:
decide to call when a declared tool fits the request (and answer when none does), prefer the
right one among several, answer after a `tool` result instead of calling again, and carry the
user's values into the arguments. The tool names, descriptions and user texts here never occur
in training (test_data.py); greedy decoding, so every run sees the same outputs.
"""

from __future__ import annotations

import pytest

from training.evaluate_served import (
    ServedReport,
    evaluate_served,
    scenario_outcomes,
    scenario_passed,
)
from training.scenarios import SCENARIOS

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def scenarios(background_loop, proxy_server) -> dict[str, tuple]:
    """Every client scenario sent once through the server: label -> (scenario, outcome, called)."""
    results = background_loop.run(
        scenario_outcomes(proxy_server.url, proxy_server.model), timeout=600
    )
    return {scenario.label: (scenario, outcome, called) for scenario, outcome, called in results}


@pytest.fixture(scope="module")
def heldout(background_loop, proxy_server) -> ServedReport:
    """60 held-out tool requests (calls, no-fit answers, tool results) at temperature 0."""
    report = background_loop.run(
        evaluate_served(proxy_server.url, count=60, temperature=0.0, model=proxy_server.model),
        timeout=1200,
    )
    print("\n" + report.summary())
    for failure in report.failures:
        print("- " + failure)
    return report


# What the committed weights still get wrong, greedily (training/RUNS.md has the numbers):
# LangChain's bare "Get weather." without a system prompt gets an "I cannot" answer, a stock
# result is followed by the same call again, news among four tools picks the email tool, and
# 2 + 3 gets a wrong sum.
KNOWN_MISSES = {
    "langchain call",
    "openai-sdk stock answer",
    "several tools: news",
    "several tools: arithmetic",
}


@pytest.mark.parametrize(
    "label",
    [
        pytest.param(
            s.label,
            marks=pytest.mark.xfail(
                reason="a known miss of the demo model (issue 7 item 3)", strict=False
            ),
        )
        if s.label in KNOWN_MISSES
        else s.label
        for s in SCENARIOS
    ],
    ids=str,
)
def test_each_client_scenario_gets_the_expected_call_or_answer(scenarios, label):
    scenario, outcome, called = scenarios[label]
    assert scenario_passed(scenario, outcome, called), (called, outcome)


def test_heldout_tool_sets_every_reply_is_well_formed_and_declared(heldout):
    assert heldout.total == 60
    assert heldout.well_formed >= heldout.total - 1, heldout.failures
    assert heldout.undeclared_calls == 0


def test_heldout_tool_sets_call_decisions_and_tool_choice(heldout):
    # Thresholds under what the committed weights measure on 120 such requests (call decision
    # 77%, right tool 62%; training/RUNS.md), far above the previous model's right tool
    # (10%). Calling when no declared tool fits is the main remaining error.
    right, of = heldout.decision
    assert right >= 0.65 * of, heldout.failures
    right, of = heldout.right_tool
    assert of >= 10 and right >= 0.45 * of, heldout.failures


def test_heldout_tool_results_are_answered_not_called_again(heldout):
    right, of = heldout.answers_after_result
    assert of > 0 and right >= 0.9 * of, heldout.failures
