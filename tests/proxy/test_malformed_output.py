"""Malformed model output is never an error (serving-anchors §3, fixtures (a)-(j)).

A scripted backend replays exact token sequences through the real server; each test checks what
a client receives over HTTP: a 200, a well-formed stream ending in [DONE], and every piece of
text recovered into the right field.
"""

from __future__ import annotations

import json

import httpx
import pytest

from proxy.backends.scripted import Script
from tests.proxy.helpers import WEATHER_TOOL, body, fold_content, stream_chunks, toks

URL = "/v1/chat/completions"


def run(server, script: Script, **extra) -> dict:
    """Stream and non-stream the same script; assert they agree; return the folded stream."""
    server.backend.script = script
    payload = body(server.model, **extra)
    with httpx.Client(base_url=server.url) as client:
        folded = fold_content(stream_chunks(client, URL, payload))
        whole = client.post(URL, json=payload)
    assert whole.status_code == 200, whole.text
    message = whole.json()["choices"][0]["message"]
    assert (message["content"] or "") == folded["content"]
    assert (message["reasoning"] or "") == folded["reasoning"]
    calls = [
        {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
        for c in message["tool_calls"] or []
    ]
    assert calls == [
        {"name": c["name"], "arguments": c["arguments"]} for c in folded["tool_calls"].values()
    ]
    assert whole.json()["choices"][0]["finish_reason"] == folded["finish_reason"]
    return folded


def test_a_garbage_in_a_tool_call_header_is_dropped_and_the_call_kept(scripted_server):
    out = run(
        scripted_server,
        Script(
            [
                toks(
                    '<|channel|>commentary ––x to=functions.get_weather<|message|>{"city":"Paris"}<|call|>'
                )
            ]
        ),
        tools=[WEATHER_TOOL],
    )
    assert [(c["name"], c["arguments"]) for c in out["tool_calls"].values()] == [
        ("get_weather", '{"city":"Paris"}')
    ]
    assert out["finish_reason"] == "tool_calls"


def test_a_garbled_channel_name_becomes_content(scripted_server):
    out = run(scripted_server, Script([toks("<|channel|>––commentary<|message|>Hi there<|end|>")]))
    assert out["content"] == "Hi there"


def test_a_unknown_constrain_in_a_final_header_keeps_the_answer(scripted_server):
    out = run(
        scripted_server,
        Script([toks("<|channel|>final <|constrain|>response<|message|>Done.<|return|>")]),
    )
    assert out["content"] == "Done." and out["finish_reason"] == "stop"


def test_b_text_without_any_header_is_content(scripted_server):
    out = run(scripted_server, Script([toks("I can't help with that.")]))
    assert out["content"] == "I can't help with that."
    assert out["reasoning"] == "" and out["finish_reason"] == "stop"


def test_b_recoveries_are_counted_in_metrics(scripted_server):
    run(scripted_server, Script([toks("I can't help with that.")]))
    with httpx.Client(base_url=scripted_server.url) as client:
        text = client.get("/metrics").text
    line = next(
        line
        for line in text.splitlines()
        if line.startswith("harmony_proxy_parse_recoveries_total")
    )
    assert float(line.split()[-1]) >= 2


def test_c_doubled_start_is_ignored(scripted_server):
    out = run(
        scripted_server,
        Script(
            [
                toks(
                    "<|channel|>analysis<|message|>Hmm.<|end|><|start|><|start|>assistant<|channel|>final<|message|>Hi<|return|>"
                )
            ]
        ),
    )
    assert out["reasoning"] == "Hmm." and out["content"] == "Hi"


def test_d_tokens_after_return_are_not_part_of_the_answer(scripted_server):
    script = Script(
        [
            toks(
                "<|channel|>final<|message|>Hi<|return|><|start|>assistant<|channel|>final<|message|>extra<|return|>"
            )
        ],
        ignore_stop_tokens=True,
    )
    out = run(scripted_server, script)
    assert out["content"] == "Hi" and out["finish_reason"] == "stop"


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_d_an_answer_ended_before_the_engine_stopped_is_not_cut_by_its_length(
    scripted_server, chunk
):
    """The engine ran to its token budget ("length") after the answer's <|return|>: the answer
    itself ended, so its finish_reason is "stop", and the tokens after it are not usage. Also
    when <|return|> and the budget's last token come in one engine output (a merged or
    multi-token chunk): the engine's reason applies only to a chunk the choice ran through."""
    answer = toks("<|channel|>final<|message|>Hi<|return|>")
    tail = toks("<|start|>assistant<|channel|>final<|message|>more text<|return|>")
    script = Script(
        [answer + tail], ignore_stop_tokens=True, finish_reason="length", chunk_sizes=(chunk,)
    )
    out = run(scripted_server, script)
    assert out["content"] == "Hi" and out["finish_reason"] == "stop"
    scripted_server.backend.script = script
    whole = httpx.post(f"{scripted_server.url}{URL}", json=body(scripted_server.model))
    assert whole.json()["usage"]["completion_tokens"] == len(answer)


def test_d_an_answer_cut_by_the_budget_is_length(scripted_server):
    """The counterpart: the budget ran out inside the answer, in a multi-token chunk too."""
    script = Script(
        [toks("<|channel|>final<|message|>Hello there")], finish_reason="length", chunk_sizes=(4,)
    )
    out = run(scripted_server, script)
    assert out["content"] == "Hello there" and out["finish_reason"] == "length"


def test_e_bare_name_tool_call_on_the_analysis_channel_is_a_tool_call(scripted_server):
    out = run(
        scripted_server,
        Script(
            [
                toks(
                    '<|channel|>analysis<|message|>Need it.<|end|><|start|>assistant to=get_weather<|channel|>analysis<|message|>{"city":"Oslo"}<|call|>'
                )
            ]
        ),
        tools=[WEATHER_TOOL],
    )
    assert out["reasoning"] == "Need it."
    assert [(c["name"], c["arguments"]) for c in out["tool_calls"].values()] == [
        ("get_weather", '{"city":"Oslo"}')
    ]
    assert out["finish_reason"] == "tool_calls"


def test_e_unknown_bare_recipient_is_not_a_fake_tool_call(scripted_server):
    out = run(
        scripted_server,
        Script([toks("<|channel|>final junk<|message|>Hi<|return|>")]),
        tools=[WEATHER_TOOL],
    )
    assert out["tool_calls"] == {} and out["content"] == "Hi"


def test_f_constrain_glued_to_the_recipient_is_cut_off(scripted_server):
    out = run(
        scripted_server,
        Script(
            [
                toks(
                    '<|channel|>commentary to=functions.get_weather<|constrain|>json<|message|>{"city":"Rome"}<|call|>'
                )
            ]
        ),
        tools=[WEATHER_TOOL],
    )
    assert [c["name"] for c in out["tool_calls"].values()] == ["get_weather"]


@pytest.mark.parametrize(
    ("client_name", "model_writes"),
    [
        ("web-search", "web_search"),
        ("fs.read", "fs_read"),
        ("git/commit", "git_commit"),
        ("fs.read", "fs.read"),
    ],
)
def test_g_tool_names_with_dash_dot_slash_map_back_exactly(
    scripted_server, client_name, model_writes
):
    tool = {"type": "function", "function": {"name": client_name, "parameters": {"type": "object"}}}
    out = run(
        scripted_server,
        Script(
            [
                toks(
                    f"<|channel|>commentary to=functions.{model_writes} <|constrain|>json<|message|>{{}}<|call|>"
                )
            ]
        ),
        tools=[tool],
    )
    assert [c["name"] for c in out["tool_calls"].values()] == [client_name]


def test_h_invalid_json_arguments_are_passed_through_verbatim(scripted_server):
    args = '{"code": "def f():\n    return 1\n'
    out = run(
        scripted_server,
        Script(
            [
                toks(
                    f"<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{args}<|call|>"
                )
            ]
        ),
        tools=[WEATHER_TOOL],
    )
    assert [c["arguments"] for c in out["tool_calls"].values()] == [args]
    assert out["finish_reason"] == "tool_calls"


MIXED = toks(
    "<|channel|>analysis<|message|>The user wants weather; call the tool.<|end|>"
    "<|start|>assistant<|channel|>commentary<|message|>Checking the forecast.<|end|>"
    '<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{"city": "São Paulo"}<|call|>'
)


@pytest.mark.parametrize("size", range(1, 9))
def test_i_chunks_of_1_to_8_tokens_across_channel_switches_give_the_same_result(
    scripted_server, size
):
    out = run(scripted_server, Script([MIXED], chunk_sizes=(size,)), tools=[WEATHER_TOOL])
    assert out["reasoning"] == "The user wants weather; call the tool."
    assert out["content"] == "Checking the forecast."
    assert [(c["name"], json.loads(c["arguments"])) for c in out["tool_calls"].values()] == [
        ("get_weather", {"city": "São Paulo"})
    ]
    assert out["finish_reason"] == "tool_calls"


def test_i_mixed_chunk_sizes_give_the_same_result(scripted_server):
    out = run(scripted_server, Script([MIXED], chunk_sizes=(1, 8, 3, 5, 2)), tools=[WEATHER_TOOL])
    assert out["content"] == "Checking the forecast."
    assert json.loads(out["tool_calls"][0]["arguments"]) == {"city": "São Paulo"}


def test_j_length_cut_mid_analysis_returns_the_partial_reasoning(scripted_server):
    script = Script(
        [
            toks(
                "<|channel|>analysis<|message|>One two three four five six seven.<|end|><|start|>assistant<|channel|>final<|message|>Hi<|return|>"
            )
        ]
    )
    out = run(scripted_server, script, max_completion_tokens=6)
    assert out["finish_reason"] == "length"
    assert out["reasoning"] and "One two three four five six seven.".startswith(out["reasoning"])
    assert out["content"] == ""


def test_j_length_cut_mid_tool_arguments_keeps_the_partial_call(scripted_server):
    script = Script(
        [
            toks(
                '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Amsterdam"}<|call|>'
            )
        ]
    )
    out = run(scripted_server, script, tools=[WEATHER_TOOL], max_tokens=12)
    assert out["finish_reason"] == "length"
    (call,) = out["tool_calls"].values()
    assert call["name"] == "get_weather"
    assert (
        '{"city": "Amsterdam"}'.startswith(call["arguments"])
        and call["arguments"] != '{"city": "Amsterdam"}'
    )
