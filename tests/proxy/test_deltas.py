"""DeltaAssembler details that HTTP tests cannot pin down: hold-back and recovery flushes."""

from __future__ import annotations

from proxy.api.chat_stream import ChoiceDeltas
from proxy.core.assembler import DeltaAssembler
from proxy.core.conversation import load_encoding
from proxy.core.tool_names import ToolNames
from tests.proxy.helpers import toks

STOPS = (200002, 200012, 199999)


def feed_all(text: str, size: int = 1, **kw) -> tuple[list[dict], DeltaAssembler]:
    assembler = DeltaAssembler(
        load_encoding(), ToolNames(["get_weather"]), stop_token_ids=STOPS, **kw
    )
    render = ChoiceDeltas(include_reasoning=True, mirror_reasoning_content=False)
    tokens = toks(text)
    deltas = [
        render.delta(assembler.feed(tokens[i : i + size])) for i in range(0, len(tokens), size)
    ]
    deltas.append(render.delta(assembler.finish()))
    return [d for d in deltas if d is not None], assembler


def content(deltas: list[dict]) -> str:
    return "".join(d.get("content", "") for d in deltas)


def test_text_that_may_start_a_stop_string_is_held_back_until_it_cannot():
    deltas, _ = feed_all("<|channel|>final<|message|>a END-ish b<|return|>", stop_strings=("END!",))
    assert content(deltas) == "a END-ish b"
    assert all(not d.get("content", "").endswith("END") for d in deltas[:-1])


def test_a_stop_string_split_across_tokens_still_stops():
    deltas, assembler = feed_all(
        "<|channel|>final<|message|>alpha beta gamma<|return|>", stop_strings=("ta ga",)
    )
    assert content(deltas) == "alpha be"
    assert assembler.stopped_by_string and assembler.done


def test_the_earliest_of_several_stop_strings_wins():
    deltas, _ = feed_all(
        "<|channel|>final<|message|>one two three<|return|>", stop_strings=("three", "two")
    )
    assert content(deltas) == "one "


def test_a_message_cut_by_eos_mid_header_is_recovered_as_content():
    deltas, assembler = feed_all(
        "<|channel|>final<|message|>Hi<|end|><|start|>assistant<|channel|>fin", 1
    )
    assert content(deltas).startswith("Hi")
    assert assembler.done


def test_generation_stops_at_the_first_stop_token():
    _, assembler = feed_all("<|channel|>final<|message|>x<|call|>ignored text")
    assert assembler.done
    # Tokens after the end are not the choice's, however the engine's outputs were cut (one
    # chunk here, or the same tokens merged from several when the loop ran late).
    assert assembler.completion_tokens == len(toks("<|channel|>final<|message|>x<|call|>"))


def test_reasoning_tokens_count_analysis_text_only():
    _, assembler = feed_all(
        "<|channel|>analysis<|message|>a b c<|end|><|start|>assistant<|channel|>final<|message|>d e<|return|>"
    )
    assert assembler.reasoning_tokens == len(toks("a b c"))


def test_separate_messages_of_one_kind_are_joined_by_a_newline():
    deltas, _ = feed_all(
        "<|channel|>analysis<|message|>first<|end|><|start|>assistant<|channel|>analysis<|message|>second<|end|>"
        "<|start|>assistant<|channel|>final<|message|>ok<|return|>"
    )
    assert "".join(d.get("reasoning", "") for d in deltas) == "first\nsecond"
