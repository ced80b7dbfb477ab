"""Responses `truncation: "auto"`: the oldest turns dropped when a conversation outgrows the
context (proxy/core/truncation.py), through the real server and the openai SDK on a scripted
engine with a small context; the choice of what is dropped, against a brute force.
"""

from __future__ import annotations

import math
import time

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.core.conversation import load_encoding
from proxy.core.request import (
    AssistantTurn,
    DeveloperText,
    GenerationRequest,
    Instructions,
    PastCall,
    Sampling,
    ToolResult,
    UserText,
)
from proxy.core.truncation import droppable_units, fit_to_context, without_units
from proxy.server.settings import ProxyConfig
from tests.proxy.helpers import toks
from tests.support.server_fixtures import TEST_DATE

CONTEXT = 1024
ANSWER = "<|channel|>final<|message|>Done.<|return|>"
WORDS = " ".join(f"w{i}" for i in range(150))  # ~300 tokens


@pytest.fixture
def small(make_server):
    backend = ScriptedBackend(max_model_len=CONTEXT)
    config = ProxyConfig(served_model_names=(backend.model_name,), conversation_date=TEST_DATE)
    server = make_server(config, backend)
    backend.script = Script([toks(ANSWER)] * 8)
    return server


def sdk(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def prompt(server) -> str:
    return load_encoding().decode(server.backend.requests[-1].prompt_token_ids)


def chat_history(turns: int) -> list[dict]:
    items: list[dict] = []
    for i in range(turns):
        items.append({"role": "user", "content": f"Question {i}: {WORDS}"})
        items.append({"role": "assistant", "content": f"Answer {i}: {WORDS}"})
    items.append({"role": "user", "content": "Last question: what did we say?"})
    return items


def test_auto_drops_the_oldest_turns_and_keeps_instructions_and_the_last_question(small):
    client = sdk(small)
    history = chat_history(4)  # ~2,400 tokens against a 1,024-token context
    with pytest.raises(openai.BadRequestError) as refused:  # "disabled", the default
        client.responses.create(model=small.model, input=history, instructions="Be brief.")
    assert refused.value.body["code"] == "context_length_exceeded"

    made = client.responses.create(
        model=small.model, input=history, instructions="Be brief.", truncation="auto"
    )
    assert made.status == "completed" and made.output_text == "Done."
    assert made.truncation == "auto"
    sent = prompt(small)
    assert "Be brief." in sent and "Last question: what did we say?" in sent
    assert "Question 0:" not in sent and "Answer 0:" not in sent  # the oldest went first
    assert "Answer 3:" in sent  # the newest that fit stayed
    used = len(small.backend.requests[-1].prompt_token_ids)
    assert CONTEXT - used >= CONTEXT // 4  # room left for the answer
    assert made.usage.input_tokens == used


def test_with_max_output_tokens_exactly_that_room_is_left(small):
    made = sdk(small).responses.create(
        model=small.model, input=chat_history(4), truncation="auto", max_output_tokens=600
    )
    assert made.status == "completed"
    used = len(small.backend.requests[-1].prompt_token_ids)
    assert CONTEXT - used >= 600
    assert "Question 3:" not in prompt(small)  # more room asked: more dropped


def test_an_agent_loop_keeps_its_task_and_drops_its_oldest_rounds(small):
    items: list[dict] = [{"role": "user", "content": "Task: summarise the logs."}]
    for i in range(6):
        call_id = f"call_{i}"
        items.append(
            {
                "type": "function_call",
                "call_id": call_id,
                "name": "read_log",
                "arguments": f'{{"part": {i}}}',
            }
        )
        items.append(
            {"type": "function_call_output", "call_id": call_id, "output": f"log {i}: {WORDS}"}
        )
    tool = {
        "type": "function",
        "name": "read_log",
        "parameters": {"type": "object", "properties": {"part": {"type": "integer"}}},
    }
    made = sdk(small).responses.create(
        model=small.model, input=items, tools=[tool], truncation="auto"
    )
    assert made.status == "completed"
    sent = prompt(small)
    assert "Task: summarise the logs." in sent
    assert "log 0:" not in sent and "log 5:" in sent
    kept = [i for i in range(6) if f"log {i}:" in sent]
    assert kept == list(range(kept[0], 6))  # a suffix of the rounds
    for i in kept:  # every result kept has its call
        assert f'{{"part": {i}}}' in sent


def test_a_call_and_its_output_apart_are_dropped_together(small):
    """A user message between a call and its output: the two still go together (a kept output
    without its call would be a 400 from the render, or be pinned on another call)."""
    tool = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
    items: list[dict] = [{"role": "user", "content": f"Start: {WORDS}"}]
    items.append({"type": "function_call", "call_id": "c0", "name": "lookup", "arguments": "{}"})
    items.append({"role": "user", "content": f"Meanwhile: {WORDS}"})
    items.append({"type": "function_call_output", "call_id": "c0", "output": f"found {WORDS}"})
    items.append({"role": "user", "content": f"Later: {WORDS}"})
    items.append({"role": "user", "content": "Now answer."})
    made = sdk(small).responses.create(
        model=small.model, input=items, tools=[tool], truncation="auto"
    )
    assert made.status == "completed"
    sent = prompt(small)
    assert "Now answer." in sent and "Start:" not in sent
    assert ("found w0" in sent) == ("to=functions.lookup" in sent)  # both or neither


def test_a_prompt_that_fits_but_leaves_the_answer_little_room_is_cut(small):
    """Without max_output_tokens, a prompt leaving less than a quarter of the context is cut:
    else the answer would end after a few tokens of reasoning."""
    items = chat_history(1)[:-1] + [{"role": "user", "content": f"Now: {WORDS}"}]
    made = sdk(small).responses.create(model=small.model, input=items, truncation="auto")
    used = len(small.backend.requests[-1].prompt_token_ids)
    assert made.status == "completed" and CONTEXT - used >= CONTEXT // 4
    assert "Question 0:" not in prompt(small)
    untouched = sdk(small).responses.create(model=small.model, input=items)  # "disabled"
    assert untouched.usage.input_tokens > CONTEXT * 3 // 4  # it did fit, with little room


def test_when_even_the_last_question_does_not_fit_it_is_still_refused(small):
    huge = [{"role": "user", "content": "old"}, {"role": "user", "content": WORDS * 5}]
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(small).responses.create(model=small.model, input=huge, truncation="auto")
    assert refused.value.body["code"] == "context_length_exceeded"


def test_a_short_conversation_is_not_truncated_and_disabled_is_echoed(small):
    made = sdk(small).responses.create(model=small.model, input="Hi", truncation="auto")
    assert made.truncation == "auto" and "Hi" in prompt(small)
    plain = sdk(small).responses.create(model=small.model, input="Hi")
    assert plain.truncation == "disabled"


@pytest.mark.parametrize("value", ["sometimes", 3, None])
def test_truncation_other_than_auto_or_disabled_is_a_400_naming_it(small, value):
    if value is None:  # null: the default
        assert (
            sdk(small)
            .responses.create(model=small.model, input="Hi", extra_body={"truncation": None})
            .truncation
            == "disabled"
        )
        return
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(small).responses.create(model=small.model, input="Hi", extra_body={"truncation": value})
    assert refused.value.status_code == 400
    assert refused.value.body["param"] == "truncation"


# -- the choice of what is dropped -------------------------------------------------------------

PART_KINDS = st.sampled_from(["user", "developer", "assistant", "assistant+calls", "result"])


def _parts(shape: list[tuple[str, int, int]]) -> tuple:
    """Parts from (kind, size, which earlier call a result answers); a result may stand apart
    from its call, as a user message between them leaves it."""
    parts: list = [Instructions("system prompt", "instructions")]
    calls: list[str] = []
    for n, (kind, size, pick) in enumerate(shape):
        text = "x" * size
        if kind == "user":
            parts.append(UserText(text, f"input[{n}]"))
        elif kind == "developer":
            parts.append(DeveloperText(text, f"input[{n}]"))
        elif kind == "assistant":
            parts.append(AssistantTurn(f"input[{n}]", text=text))
        elif kind == "assistant+calls":
            calls.append(f"c{n}")
            parts.append(AssistantTurn(f"input[{n}]", calls=(PastCall(f"c{n}", "f", text),)))
        elif calls:
            parts.append(ToolResult(calls[pick % len(calls)], text, f"input[{n}]"))
    return tuple(parts)


def _size(request: GenerationRequest) -> list[int]:
    """A stand-in render: ten tokens a part plus one a character (the real tokenizer's count of
    these texts, the lower bound the search starts from, is never more)."""
    return [0] * sum(10 + len(t) for t in request.texts())


def _calls_of(parts) -> dict[str, int]:
    return {c.call_id: i for i, p in enumerate(parts) if type(p) is AssistantTurn for c in p.calls}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(PART_KINDS, st.integers(0, 300), st.integers(0, 5)), min_size=1, max_size=14
    ),
    st.integers(200, 2000),
    st.one_of(st.none(), st.integers(1, 400)),
)
def test_the_fewest_oldest_units_are_dropped(shape, context, max_tokens):
    request = GenerationRequest(
        model="m", parts=_parts(shape), sampling=Sampling(max_tokens=max_tokens)
    )
    parts = request.parts
    units = droppable_units(parts)
    covered = [i for unit in units for i in unit]
    # Each droppable part in one unit, units in the order of their first part; instructions
    # and the last user text are never in one.
    assert len(covered) == len(set(covered)) and 0 not in covered
    assert [unit[0] for unit in units] == sorted(unit[0] for unit in units)
    users = [i for i, p in enumerate(parts) if type(p) is UserText]
    if users:
        assert users[-1] not in covered
    made_at = _calls_of(parts)
    unit_of = {i: u for u, unit in enumerate(units) for i in unit}
    for i, part in enumerate(parts):  # a result is in its call's unit
        if type(part) is ToolResult and part.call_id in made_at and i in unit_of:
            assert unit_of[made_at[part.call_id]] == unit_of[i]

    need = max_tokens if max_tokens is not None else min(context // 4, 8192)
    renders: list[int] = []

    def counted(shorter: GenerationRequest) -> list[int]:
        renders.append(len(shorter.parts))
        return _size(shorter)

    shorter, rendered = fit_to_context(request, counted, context, load_encoding())
    # Lower bounds, then one render of the whole, one of the shortest and a bisection.
    assert len(renders) <= 2 + math.ceil(math.log2(len(units) + 1))
    fits = [
        context - len(_size(without_units(request, units[:k]))) >= need
        for k in range(len(units) + 1)
    ]
    k = next((k for k in range(len(units) + 1) if fits[k]), len(units))
    assert shorter == (without_units(request, units[:k]) if k else request)
    assert rendered == _size(shorter)
    kept_calls = _calls_of(shorter.parts)
    for part in shorter.parts:  # no result kept without its call
        if type(part) is ToolResult and part.call_id in made_at:
            assert part.call_id in kept_calls


def test_a_previous_response_id_chain_is_truncated_and_stays_whole_in_the_store(small):
    client = sdk(small)
    first = client.responses.create(model=small.model, input=chat_history(4), truncation="auto")
    second = client.responses.create(
        model=small.model,
        previous_response_id=first.id,
        input="And one more thing.",
        truncation="auto",
    )
    assert second.status == "completed"
    sent = prompt(small)
    assert "And one more thing." in sent and "Question 0:" not in sent
    # The store keeps every input item; only the prompt was cut.
    stored = list(client.responses.input_items.list(first.id, limit=100))
    assert len(stored) == len(chat_history(4))


def test_background_responses_truncate_too(small):
    client = sdk(small)
    made = client.responses.create(
        model=small.model, input=chat_history(4), truncation="auto", background=True
    )
    for _ in range(200):
        made = client.responses.retrieve(made.id)
        if made.status not in ("queued", "in_progress"):
            break
        time.sleep(0.05)
    assert made.status == "completed" and made.truncation == "auto"
    assert "Question 0:" not in prompt(small)
