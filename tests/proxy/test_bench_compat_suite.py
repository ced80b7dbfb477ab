"""bench_compat_suite.py's relay records what the SDK received, and its counts read it right.

The relay sits between the Agents SDK and the server; every figure the benchmark prints (tool
calls, argument characters, completions at the cap) comes from its record, so it must pass the
bytes through unchanged and the counts must agree with what an OpenAI client itself parsed.
Checked against the real server on 127.0.0.1 replaying bench_ceiling's tool-call completion.
"""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from benchmarks.bench_compat_suite import SuiteRun, _read_exchanges, recording_relay
from tests.support.replay import WEATHER_TOOL
from tests.support.server_fixtures import RunningServer

QUESTION = "What's the weather in Paris, and what to wear?"
RESPONSES_TOOL = {"type": "function", **WEATHER_TOOL["function"]}


def test_relay_counts_the_tool_calls_the_client_received(
    replaying: RunningServer, tmp_path: Path
) -> None:
    record = tmp_path / "exchanges.jsonl"
    model = replaying.backend.model_name
    with recording_relay(replaying.url, record) as relay:
        client = openai.OpenAI(base_url=relay + "/v1", api_key="x", max_retries=0)
        chat = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": QUESTION}], tools=[WEATHER_TOOL]
        )
        response = client.responses.create(model=model, input=QUESTION, tools=[RESPONSES_TOOL])
    seen = [c.function.arguments for c in chat.choices[0].message.tool_calls or []]
    seen += [i.arguments for i in response.output if i.type == "function_call"]
    assert len(seen) == 2 and all(a.startswith("{") for a in seen)

    run = SuiteRun("proxy")
    _read_exchanges(run, record)
    assert (run.requests, run.errors, run.tool_calls) == (2, 0, 2)
    assert run.argument_chars == sum(len(a) for a in seen)
    assert (run.padded_calls, run.capped, run.unreasoned) == (0, 0, 0)
    assert run.completion_tokens == chat.usage.completion_tokens + response.usage.output_tokens


def test_completions_cut_by_the_budget_count_as_capped(
    replaying: RunningServer, tmp_path: Path
) -> None:
    record = tmp_path / "exchanges.jsonl"
    model = replaying.backend.model_name
    with recording_relay(replaying.url, record) as relay:
        client = openai.OpenAI(base_url=relay + "/v1", api_key="x", max_retries=0)
        chat = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": QUESTION}],
            tools=[WEATHER_TOOL],
            max_tokens=40,
        )
        response = client.responses.create(
            model=model, input=QUESTION, tools=[RESPONSES_TOOL], max_output_tokens=40
        )
    assert chat.choices[0].finish_reason == "length"
    assert response.status == "incomplete"

    run = SuiteRun("proxy")
    _read_exchanges(run, record)
    assert (run.requests, run.capped) == (2, 2)


def test_relay_passes_error_responses_through(replaying: RunningServer, tmp_path: Path) -> None:
    record = tmp_path / "exchanges.jsonl"
    with recording_relay(replaying.url, record) as relay:
        client = openai.OpenAI(base_url=relay + "/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=replaying.backend.model_name, messages=[])
    assert caught.value.status_code == 400

    run = SuiteRun("proxy")
    _read_exchanges(run, record)
    assert (run.requests, run.errors, run.tool_calls) == (1, 1, 0)
