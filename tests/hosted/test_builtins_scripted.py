"""gpt-oss's built-in tools in /v1/responses on the real server and a scripted model.

`code_interpreter` runs the model's `python` calls in the real sandbox and `web_search` runs its
`browser.*` calls against a real HTTP search endpoint; the scripted backend makes the model's
calls deterministic, so each test shows the whole loop through the openai SDK: the built-in
declared in the system message, the call run, its result in the next round's prompt, the
answer, the items and events, the state kept per container and owner.
"""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.core.conversation import load_encoding
from proxy.hosted.sandbox import SandboxSettings
from proxy.hosted.sandbox_process import ProcessLimits
from proxy.server.settings import ProxyConfig
from tests.hosted.scripted_model import ANSWER, prompts
from tests.hosted.search_endpoint import search_endpoint
from tests.proxy.helpers import toks
from tests.support.server_fixtures import TEST_DATE, RunningServer

THINK = "<|channel|>analysis<|message|>Let me compute.<|end|><|start|>assistant"
SANDBOX = SandboxSettings(
    process=ProcessLimits(memory_bytes=256 << 20, processes=8, scratch_bytes=8 << 20),
    timeout_seconds=5.0,
)
AUTO = {"type": "code_interpreter", "container": {"type": "auto"}}


def python_call(code: str) -> str:
    """The model's python call as gpt-oss writes it (analysis channel, `code` content type)."""
    return f"{THINK}<|channel|>analysis to=python code<|message|>{code}<|call|>"


def script(backend: ScriptedBackend, first: str) -> None:
    """`first` while the prompt holds no tool result of this turn, then the answer."""

    def script_for(prompt: list[int]) -> Script:
        text = load_encoding().decode(prompt)
        last_user = text.rfind("<|start|>user")
        answered = " to=assistant<|channel|>" in text[last_user:]
        return Script([toks(ANSWER if answered else first)])

    backend.script_for = script_for


@pytest.fixture
def builtin_server(make_server: Callable[..., RunningServer]) -> Callable[..., RunningServer]:
    def make(**options: object) -> RunningServer:
        backend = ScriptedBackend()
        settings: dict[str, object] = {
            "served_model_names": (backend.model_name,),
            "conversation_date": TEST_DATE,
            "code_interpreter": SANDBOX,
        }
        settings.update(options)
        return make_server(ProxyConfig(**settings), backend)  # type: ignore[arg-type]

    return make


def client_for(server: RunningServer, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)


def test_the_python_call_runs_in_the_sandbox_and_its_result_reaches_the_answer(builtin_server):
    server = builtin_server()
    script(server.backend, python_call("import math\nprint(math.factorial(10))"))
    response = client_for(server).responses.create(
        model=server.model, input="What is 10!?", tools=[AUTO]
    )
    assert response.status == "completed"
    assert [i.type for i in response.output] == [
        "reasoning",
        "code_interpreter_call",
        "reasoning",
        "message",
    ]
    item = response.output[1]
    assert item.code == "import math\nprint(math.factorial(10))"
    assert item.container_id.startswith("cntr_") and item.status == "completed"
    assert [(o.type, o.logs) for o in item.outputs] == [("logs", "3628800\n")]
    first, second = prompts(server.backend)
    assert "## python\n\nUse this tool to execute Python code" in first
    assert first.index("## python") < first.index("<|start|>user")  # the system message
    assert "<|start|>python to=assistant<|channel|>commentary<|message|>3628800\n<|end|>" in second
    assert response.output_text == "The answer is ready."


def test_the_stream_has_the_code_interpreter_events_in_order(builtin_server):
    server = builtin_server()
    script(server.backend, python_call("print(2 ** 10)"))
    with client_for(server).responses.stream(
        model=server.model, input="2**10?", tools=[AUTO]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events if "code_interpreter" in e.type]
    assert kinds[0] == "response.code_interpreter_call.in_progress"
    assert set(kinds[1:-3]) == {"response.code_interpreter_call_code.delta"}
    assert kinds[-3:] == [
        "response.code_interpreter_call_code.done",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
    ]
    assert final.output[1].outputs[0].logs == "1024\n"


def test_a_container_keeps_its_state_across_requests_of_its_owner_only(builtin_server):
    server = builtin_server(api_keys=("key-alice", "key-bob"))
    alice, bob = client_for(server, "key-alice"), client_for(server, "key-bob")
    script(server.backend, python_call("answer = 6 * 7"))
    first = alice.responses.create(model=server.model, input="remember", tools=[AUTO])
    container = first.output[1].container_id
    script(server.backend, python_call("print(answer)"))
    again = alice.responses.create(
        model=server.model,
        input="recall",
        tools=[{"type": "code_interpreter", "container": container}],
    )
    assert again.output[1].container_id == container
    assert again.output[1].outputs[0].logs == "42\n"
    with pytest.raises(openai.BadRequestError) as theirs:
        bob.responses.create(
            model=server.model,
            input="steal",
            tools=[{"type": "code_interpreter", "container": container}],
        )
    with pytest.raises(openai.BadRequestError) as unknown:
        bob.responses.create(
            model=server.model,
            input="steal",
            tools=[{"type": "code_interpreter", "container": "cntr_" + "0" * 48}],
        )
    assert theirs.value.body["param"] == "tools[0].container"
    assert theirs.value.body["message"].replace(container, "X") == unknown.value.body[
        "message"
    ].replace("cntr_" + "0" * 48, "X")


def test_an_escape_attempt_is_contained_and_the_model_reads_why(builtin_server, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    server = builtin_server()
    code = f"print(open({str(secret)!r}).read())"
    script(server.backend, python_call(code))
    response = client_for(server).responses.create(
        model=server.model, input="read it", tools=[AUTO]
    )
    logs = response.output[1].outputs[0].logs
    assert "FileNotFoundError" in logs and "TOP-SECRET" not in logs
    assert "FileNotFoundError" in prompts(server.backend)[1]


def test_the_next_turn_replays_the_python_call_and_its_output(builtin_server):
    server = builtin_server()
    client = client_for(server)
    script(server.backend, python_call("print(7 * 6)"))
    first = client.responses.create(model=server.model, input="compute", tools=[AUTO])
    script(server.backend, ANSWER)
    client.responses.create(
        model=server.model, input="and then?", previous_response_id=first.id, tools=[AUTO]
    )
    replayed = prompts(server.backend)[-1]
    assert "to=python<|channel|>commentary<|message|>print(7 * 6)<|call|>" in replayed
    assert "<|start|>python to=assistant<|channel|>commentary<|message|>42\n<|end|>" in replayed


def test_without_the_flag_code_interpreter_is_left_out(builtin_server):
    server = builtin_server(code_interpreter=None)
    script(server.backend, ANSWER)
    response = client_for(server).responses.create(
        model=server.model, input="hi", tools=[AUTO, {"type": "web_search"}]
    )
    assert response.status == "completed"
    prompt = prompts(server.backend)[0]
    assert "## python" not in prompt and "## browser" not in prompt


def test_web_search_runs_the_browser_against_the_search_endpoint(builtin_server):
    with search_endpoint() as (url, seen):
        server = builtin_server(web_search_backend=url)
        search = (
            f"{THINK}<|channel|>analysis to=browser.search <|constrain|>json<|message|>"
            '{"query":"harmony"}<|call|>'
        )
        script(server.backend, search)
        response = client_for(server).responses.create(
            model=server.model, input="Look it up", tools=[{"type": "web_search"}]
        )
    assert [i.type for i in response.output][:2] == ["reasoning", "web_search_call"]
    item = response.output[1]
    assert item.status == "completed"
    assert item.action.type == "search" and item.action.query == "harmony"
    assert [s.url for s in item.action.sources] == ["https://docs.example.org/harmony"]
    first, second = prompts(server.backend)
    assert "## browser" in first and first.index("## browser") < first.index("<|start|>user")
    assert (
        "<|start|>browser.search to=assistant<|channel|>commentary<|message|>"
        "[0] Search results for `harmony`"
    ) in second
    assert seen and all(path.startswith("/search?q=harmony") for path in seen)


def test_code_that_loops_forever_is_killed_and_the_item_says_so(make_server):
    backend = ScriptedBackend()
    quick = SandboxSettings(process=SANDBOX.process, timeout_seconds=2.0)
    config = ProxyConfig(
        served_model_names=(backend.model_name,),
        conversation_date=TEST_DATE,
        code_interpreter=quick,
    )
    server = make_server(config, backend)
    script(backend, python_call("while True:\n    pass"))
    response = client_for(server).responses.create(model=server.model, input="loop", tools=[AUTO])
    item = response.output[1]
    assert item.status == "failed"
    assert "timed out after 2 seconds" in item.outputs[0].logs
    assert "timed out after 2 seconds" in prompts(backend)[1]
    assert response.status == "completed"


def test_the_web_search_stream_has_its_events_in_order(builtin_server):
    with search_endpoint() as (url, _):
        server = builtin_server(web_search_backend=url)
        search = (
            f"{THINK}<|channel|>analysis to=browser.search <|constrain|>json<|message|>"
            '{"query":"tools"}<|call|>'
        )
        script(server.backend, search)
        with client_for(server).responses.stream(
            model=server.model, input="Look it up", tools=[{"type": "web_search"}]
        ) as stream:
            kinds = [e.type for e in stream if "web_search" in e.type]
    assert kinds == [
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.web_search_call.completed",
    ]
