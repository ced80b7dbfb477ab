"""The synthetic training data: well formed by construction, reproducible, held-out kept apart."""

from __future__ import annotations

import json
import random
import re

import openai_harmony as oracle
import pytest

from proxy.api.chat_schema import ChatCompletionRequest
from proxy.core.conversation import load_encoding
from tests.proxy.helpers import prompt_for
from training.data import generate_examples, heldout_examples
from training.evaluate import judge, tool_category, tool_heldout_examples
from training.everyday import everyday_prompts
from training.phrases import HELDOUT_TOPICS, TOPICS
from training.scenarios import SCENARIOS
from training.tool_declarations import tool_declaration, tool_name
from training.tool_families import FAMILIES, arithmetic_expression, worked


@pytest.fixture(scope="module")
def oracle_parse():
    enc = oracle.load_harmony_encoding(oracle.HarmonyEncodingName.HARMONY_GPT_OSS)
    return lambda tokens: enc.parse_messages_from_completion_tokens(tokens, oracle.Role.ASSISTANT)


@pytest.fixture(scope="module")
def training_texts() -> list[str]:
    enc = load_encoding()
    return [enc.decode(e.prompt + e.completion) for e in generate_examples(3000, seed=0)]


def test_every_training_completion_is_well_formed_for_the_reference_parser(oracle_parse):
    for example in generate_examples(300, seed=5):
        verdict = judge(example.completion, example.schemas, oracle_parse)
        assert verdict.well_formed, (verdict.reason, example)
        assert verdict.action == example.expected


def test_every_heldout_reference_completion_is_well_formed(oracle_parse):
    for example in heldout_examples(100) + tool_heldout_examples(100):
        assert judge(example.completion, example.schemas, oracle_parse).action == example.expected


def test_the_same_seed_generates_the_same_examples():
    assert generate_examples(40, seed=9) == generate_examples(40, seed=9)
    assert generate_examples(40, seed=9) != generate_examples(40, seed=10)


def test_heldout_prompts_never_occur_in_training_data():
    training = {tuple(e.prompt) for e in generate_examples(3000, seed=0)}
    assert not any(tuple(e.prompt) in training for e in heldout_examples(100))


def test_heldout_tool_names_are_never_training_tool_names():
    import random

    rng = random.Random(0)
    for family in FAMILIES:
        train = {tool_name(family, rng, heldout=False) for _ in range(300)}
        held = {tool_name(family, rng, heldout=True) for _ in range(100)}
        assert train and held and not train & held


def test_the_client_scenarios_texts_never_occur_in_training_data(training_texts):
    """Names, descriptions and user texts of the smoke scenarios stay unseen."""
    unseen: set[str] = set()
    for scenario in SCENARIOS:
        for tool in scenario.request.get("tools", []):
            unseen.add(f"type {tool['function']['name']} =")
            unseen.add(tool["function"]["description"])
        unseen.add(scenario.request["messages"][-1]["content"] + "<|end|>")
    # Tool results, and the plain greeting and sum that check no-call answers (the model is
    # meant to know these; what is new there is the tool set around them).
    unseen -= {
        "18 degrees Celsius and sunny<|end|>",
        "131.26 USD<|end|>",
        "Hello!<|end|>",
        "What is 2 + 3?<|end|>",
    }
    # The fixed legacy `get_weather` tool is trained on; the LangChain one differs in its text.
    unseen.discard("type get_weather =")
    for text in training_texts:
        assert not [u for u in unseen if u in text]


def test_prompts_are_what_the_proxy_renders_for_the_same_request():
    """Training prompts come from the proxy's own request path; spot-check one by hand."""
    example = next(e for e in generate_examples(50, seed=3) if e.expected.startswith("call:"))
    text = load_encoding().decode(example.prompt)
    assert "namespace functions {" in text and text.endswith("<|start|>assistant")
    request = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "Hi"}],
            "tools": [{"type": "function", "function": {"name": "fs.read-file/v2"}}],
        }
    )
    prompt = prompt_for(request)
    assert "type fs_read_file_v2 =" in load_encoding().decode(prompt)


def test_data_covers_calls_no_fit_answers_tool_results_and_simple_intents():
    examples = generate_examples(1500, seed=1)
    categories = {tool_category(e) for e in examples if e.tools}
    assert categories == {"call", "nofit", "result"}
    intents = {e.intent for e in examples}
    assert {"greeting", "capital", "fact", "repeat", "writing"} <= intents
    assert {f.key for f in FAMILIES} <= {i.split("+")[0].split("-")[0] for i in intents}
    called = {e.expected for e in examples if e.expected.startswith("call:")}
    assert len(called) > 100  # many distinct tool names, not a memorised few
    counts = [len(e.tools) for e in examples]
    assert max(counts) >= 5 and 0 in counts


def test_tool_declarations_come_in_every_client_style():
    import random

    rng = random.Random(0)
    tools = [tool_declaration(f, rng, heldout=False)[0]["function"] for f in FAMILIES * 40]
    names = [t["name"] for t in tools]
    for mark in "-./":
        assert any(mark in n for n in names), mark
    assert any(n != n.lower() for n in names)  # camelCase / PascalCase
    assert any("Args:" in t.get("description", "") for t in tools)  # LangChain docstrings
    assert any("description" not in t for t in tools)
    assert any(t["parameters"].get("additionalProperties") is False for t in tools)  # Pydantic


def test_tool_names_reach_the_model_as_identifiers():
    enc = load_encoding()
    requests = [enc.decode(e.prompt) for e in generate_examples(300, seed=4)]
    names = [n for text in requests for n in _type_names(text)]
    assert names and all(n.replace("_", "").isalnum() for n in names)
    assert any(n != n.lower() for n in names)


def _type_names(text: str) -> list[str]:
    return [line.split()[1] for line in text.splitlines() if line.startswith("type ")]


def test_call_arguments_are_json_matching_the_declared_schema(oracle_parse):
    for example in generate_examples(400, seed=6):
        if example.expected.startswith("call:"):
            message = list(oracle_parse(example.completion))[-1]
            arguments = json.loads(message.content[0].text)
            name = example.expected.removeprefix("call:")
            assert set(example.schemas[name]["required"]) <= set(arguments)


def test_user_spans_cover_exactly_the_user_message_text():
    enc = oracle.load_harmony_encoding(oracle.HarmonyEncodingName.HARMONY_GPT_OSS)
    example = generate_examples(1, seed=2)[0]
    start, end = example.user_spans[-1]
    assert enc.decode(example.prompt[start - 3 : start]) == "<|start|>user<|message|>"
    assert example.prompt[end] == 200007  # <|end|>


def test_sums_are_worked_out_in_true_small_steps():
    rng = random.Random(5)
    for _ in range(2000):
        expr, value = arithmetic_expression(rng)
        left, op, right = expr.split()
        assert int(right) < 10 or op != "*"  # a product has one operand below 10
        work = worked(expr)
        steps = re.findall(r"(-?\d+) ([-+*]) (\d+) = (-?\d+)", work)
        assert steps, work
        for a, sign, b, result in steps:
            assert eval(f"{a} {sign} {b}") == int(result), work  # noqa: S307 - digits only
        assert int(re.findall(r"-?\d+", work)[-1]) == value


def test_arithmetic_without_a_calculator_shows_its_work_in_the_analysis():
    enc = load_encoding()
    examples = [e for e in generate_examples(1500, seed=3) if e.intent == "calculator-nofit"]
    assert examples
    for example in examples:
        analysis = enc.decode(example.completion).split("<|message|>")[1]
        assert "=" in analysis.split(".")[1] or " then " in analysis, analysis


def test_writing_answers_are_on_the_asked_topic():
    examples = [e for e in generate_examples(1500, seed=4) if e.intent == "writing"]
    assert examples
    enc = load_encoding()
    for example in examples:
        ask = example.request["messages"][-1]["content"]
        topic = max((t for t in TOPICS if t in ask), key=len)
        final = enc.decode(example.completion).split("<|message|>")[-1]
        assert topic.lower() in final.lower(), (topic, final)


def test_everyday_evaluation_prompts_never_occur_in_training_data(training_texts):
    for item in everyday_prompts():
        if item.prompt not in ("Hello!", "What is 2 + 3?"):  # the README's own examples
            assert not any(item.prompt in text for text in training_texts), item.prompt
    for topic in HELDOUT_TOPICS:
        assert not any(f"about {topic}." in text for text in training_texts), topic
