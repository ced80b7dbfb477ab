"""`--warm-tools FILE`: the engine compiles a known agent's grammar before the server is ready.

What is proven: every set in the file reaches every engine as a one-token request carrying
exactly the grammar a real request with those tools later sends (the scripted engine records
both; on the real vLLM engine the warm request runs and a real request with the set succeeds);
a bad file stops the server at start-up with a message naming the entry. How much time it saves
is a benchmark's business (benchmarks/bench_grammar.py measures the compile per tool count).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from proxy.backends.scripted import ScriptedBackend
from proxy.server.cli import parse_settings
from proxy.server.flags import SettingsError
from proxy.server.settings import ProxyConfig
from proxy.server.warm_tools import read_warm_tools
from tests.proxy.helpers import WEATHER_TOOL
from tests.support.server_fixtures import TEST_DATE

SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search_docs",
        "description": "Search the docs.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["query"],
        },
    },
}
RESPONSES_TOOLS = [
    {
        "type": "function",
        "name": "read_file",
        "description": "Read a file.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
    },
    {"type": "custom", "name": "apply_patch", "description": "Apply a patch."},
]


def _file(tmp_path: Path, data: object) -> str:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_each_set_is_compiled_with_the_grammar_a_real_request_sends(
    make_server, tmp_path: Path
) -> None:
    sets = [
        {"api": "chat", "tools": [WEATHER_TOOL, SEARCH_TOOL]},
        {"api": "responses", "tools": RESPONSES_TOOLS},
    ]
    backend = ScriptedBackend()
    config = ProxyConfig(
        served_model_names=(backend.model_name,),
        conversation_date=TEST_DATE,
        warm_tools=_file(tmp_path, sets),
    )
    server = make_server(config, backend)
    warm = [r for r in backend.requests if r.request_id.startswith("warm-")]
    assert len(warm) == 2
    assert all(r.sampling.max_tokens == 1 for r in warm)
    assert all(r.sampling.structured_outputs for r in warm)
    backend.requests.clear()

    chat = httpx.post(
        f"{server.base_url}/chat/completions",
        json={
            "model": backend.model_name,
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [WEATHER_TOOL, SEARCH_TOOL],
        },
        timeout=30,
    )
    assert chat.status_code == 200, chat.text
    responses = httpx.post(
        f"{server.base_url}/responses",
        json={"model": backend.model_name, "input": "Read setup.py", "tools": RESPONSES_TOOLS},
        timeout=30,
    )
    assert responses.status_code == 200, responses.text
    real = [r.sampling.structured_outputs for r in backend.requests]
    assert real == [warm[0].sampling.structured_outputs, warm[1].sampling.structured_outputs]


def test_a_bare_list_of_chat_tools_is_one_set(tmp_path: Path) -> None:
    (request,) = read_warm_tools(_file(tmp_path, [WEATHER_TOOL, SEARCH_TOOL]))
    assert [t.name for t in request.tools] == ["get_weather", "search_docs"]
    assert all(t.schema_json for t in request.tools)  # checked as JSON Schema at start-up


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"tools": []}, "a JSON list"),
        ([{"api": "chat", "tools": [{"type": "function", "function": {"name": ""}}]}], "[0]"),
        ([{"api": "chat", "tools": [WEATHER_TOOL]}, {"api": "smtp", "tools": []}], "[1]"),
        (
            [{"api": "responses", "tools": [{"type": "function", "name": "f", "parameters": 3}]}],
            "tools[0].parameters",
        ),
        (
            [{"api": "chat", "tools": [WEATHER_TOOL, WEATHER_TOOL]}],
            "Duplicate tool name",
        ),
        ([{"api": "responses", "tools": [{"type": "web_search"}]}], "no callable tools"),
    ],
)
def test_a_bad_file_is_a_start_up_error_naming_the_entry(
    tmp_path: Path, data: object, named: str
) -> None:
    path = _file(tmp_path, data)
    with pytest.raises(SettingsError, match=named.replace("[", r"\[").replace("]", r"\]")):
        read_warm_tools(path)
    with pytest.raises(SystemExit) as exit_info:
        parse_settings(["serve", "--warm-tools", path], environ={})
    assert exit_info.value.code == 2


def test_an_unreadable_or_non_json_file_is_a_start_up_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        read_warm_tools(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("[{")
    with pytest.raises(SettingsError, match="not JSON"):
        read_warm_tools(str(tmp_path / "bad.json"))


@pytest.mark.engine
def test_the_real_engine_compiles_a_warmed_set(
    make_server, vllm_backend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="proxy")
    config = ProxyConfig(
        served_model_names=(vllm_backend.model_name,),
        conversation_date=TEST_DATE,
        warm_tools=_file(tmp_path, [{"api": "chat", "tools": [WEATHER_TOOL, SEARCH_TOOL]}]),
    )
    server = make_server(config, vllm_backend)
    # Ready only once the engine ran the warm request with the set's grammar.
    assert "1 of 1 tool sets compiled on 1 engine(s)" in caplog.text
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        json={
            "model": vllm_backend.model_name,
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
            "tools": [WEATHER_TOOL, SEARCH_TOOL],
            "tool_choice": "auto",
            "max_tokens": 64,
            "temperature": 0,
        },
        timeout=120,
    )
    assert response.status_code == 200, response.text
    message = response.json()["choices"][0]["message"]
    for call in message.get("tool_calls") or []:  # under the warmed grammar: declared, valid
        assert call["function"]["name"] in ("get_weather", "search_docs")
        json.loads(call["function"]["arguments"])
