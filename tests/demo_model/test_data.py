"""The synthetic training data: well formed by construction, reproducible, held-out kept apart."""

from __future__ import annotations

import openai_harmony as oracle
import pytest

from proxy.demo_model.data import generate_examples, heldout_examples
from proxy.demo_model.evaluate import judge


@pytest.fixture(scope="module")
def oracle_parse():
    enc = oracle.load_harmony_encoding(oracle.HarmonyEncodingName.HARMONY_GPT_OSS)
    return lambda tokens: enc.parse_messages_from_completion_tokens(tokens, oracle.Role.ASSISTANT)


def test_every_training_completion_is_well_formed_for_the_reference_parser(oracle_parse):
    for example in generate_examples(300, seed=5):
        verdict = judge(example.completion, example.tools, oracle_parse)
        assert verdict.well_formed, (verdict.reason, example)
        assert verdict.action == example.expected


def test_every_heldout_reference_completion_is_well_formed(oracle_parse):
    for example in heldout_examples(100):
        assert judge(example.completion, example.tools, oracle_parse).action == example.expected


def test_the_same_seed_generates_the_same_examples():
    assert generate_examples(40, seed=9) == generate_examples(40, seed=9)
    assert generate_examples(40, seed=9) != generate_examples(40, seed=10)


def test_heldout_prompts_never_occur_in_training_data():
    training = {tuple(e.prompt) for e in generate_examples(3000, seed=0)}
    assert not any(tuple(e.prompt) in training for e in heldout_examples(100))


def test_data_covers_every_intent_tool_calls_and_tool_results():
    examples = generate_examples(600, seed=1)
    intents = {e.intent for e in examples}
    assert {
        "greeting",
        "arithmetic",
        "capital",
        "fact",
        "weather",
        "search",
        "repeat",
        "weather+result",
        "search+result",
        "arithmetic+result",
    } <= intents
    assert {e.expected for e in examples} == {
        "final",
        "call:get_weather",
        "call:search",
        "call:calculator",
    }


def test_user_spans_cover_exactly_the_user_message_text():
    enc = oracle.load_harmony_encoding(oracle.HarmonyEncodingName.HARMONY_GPT_OSS)
    example = generate_examples(1, seed=2)[0]
    start, end = example.user_spans[-1]
    assert enc.decode(example.prompt[start - 3 : start]) == "<|start|>user<|message|>"
    assert example.prompt[end] == 200007  # <|end|>
