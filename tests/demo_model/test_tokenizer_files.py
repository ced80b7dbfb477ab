"""The o200k_harmony tokenizer files agree with the Harmony encoding, id for id."""

from __future__ import annotations

import pytest

from harmony import HarmonyEncodingName, load_harmony_encoding

TEXTS = [
    "Hello world! What is 12 * 7?",
    "  leading spaces,\ttabs\nand\r\nnewlines\n\n\n",
    '{"location":"Paris","unit":"celsius"}',
    "I'm sure they've gone; it's 1234567 o'clock.",
    "Ünïcödé, 日本語のテキスト, emojis 🎉🚀 and Ωmega",
    "def f(x):\n    return x ** 2  # square\n",
]


@pytest.fixture(scope="module")
def tokenizer(demo_model_path):
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(demo_model_path)


@pytest.fixture(scope="module")
def encoding():
    return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


@pytest.mark.parametrize("text", TEXTS)
def test_ordinary_text_gets_the_harmony_ids(tokenizer, encoding, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert ids == encoding.encode(text)
    assert tokenizer.decode(ids) == text


def test_every_special_token_has_its_harmony_id(tokenizer, encoding):
    names = [
        n
        for n in encoding.special_tokens_set
        if encoding.encode(n, allowed_special="all")[0] < 201088
    ]
    assert len(names) > 1000
    for name in names:
        assert (
            tokenizer.convert_tokens_to_ids(name) == encoding.encode(name, allowed_special="all")[0]
        )


def test_a_rendered_harmony_prompt_round_trips(tokenizer, encoding):
    from harmony import Conversation, Message, Role, SystemContent

    conversation = Conversation.from_messages(
        [
            Message.from_role_and_content(Role.SYSTEM, SystemContent.new()),
            Message.from_role_and_content(Role.USER, "What's the weather in Oslo?"),
        ]
    )
    tokens = encoding.render_conversation_for_completion(conversation, Role.ASSISTANT)
    text = tokenizer.decode(tokens)
    assert tokenizer.encode(text, add_special_tokens=False) == list(tokens)


def test_tokenizer_covers_the_model_vocabulary_with_harmony_specials(tokenizer):
    assert len(tokenizer) == 201088
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (
        "<|startoftext|>",
        "<|return|>",
        "<|endoftext|>",
    )
