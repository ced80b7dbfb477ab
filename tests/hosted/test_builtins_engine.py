"""gpt-oss's built-in tools on the real server and the real vLLM engine (demo model).

The call is forced (`tool_choice` `{"type": "code_interpreter"}` / `{"type": "web_search"}`),
so the grammar makes the demo model write a `python` / `browser.search` call in the trained
form; what the tiny model writes inside is its own business: these tests check the structure
(the call ran in the sandbox or against the search endpoint, its item, the next round) and not
the model's wisdom.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import openai
import pytest

from proxy.core.conversation import load_encoding
from proxy.hosted.sandbox import SandboxSettings
from proxy.server.settings import ProxyConfig
from tests.hosted.search_endpoint import search_endpoint
from tests.support.server_fixtures import TEST_DATE

pytestmark = pytest.mark.engine


class Recording:
    """The real engine, remembering what it generated (for a failure's message)."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.outputs: list[list[int]] = []

    def __getattr__(self, name: str):
        return getattr(self._backend, name)

    async def generate(self, prompt_token_ids, sampling, request_id):
        tokens: list[int] = []
        self.outputs.append(tokens)
        async for chunk in self._backend.generate(prompt_token_ids, sampling, request_id):
            tokens.extend(chunk.token_ids)
            yield chunk

    def texts(self) -> list[str]:
        return [f"{load_encoding().decode(tokens)} {tokens}" for tokens in self.outputs]


@pytest.fixture
def engine_server(make_server, vllm_backend):
    def make(**options: object):
        config = ProxyConfig(
            served_model_names=(vllm_backend.model_name,),
            conversation_date=TEST_DATE,
            max_tool_rounds=2,
            **options,  # type: ignore[arg-type]
        )
        return make_server(config, Recording(vllm_backend))

    return make


def shown(response, server) -> str:
    """What the model did, for a failure's message."""
    return f"{response.status} {response.output} {server.backend.texts()}"


def client_for(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=600)


def test_a_forced_code_interpreter_call_runs_in_the_sandbox(engine_server):
    server = engine_server(code_interpreter=SandboxSettings(timeout_seconds=10.0))
    response = client_for(server).responses.create(
        model=server.model,
        input="Use python to compute 12 * 34.",
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
        tool_choice={"type": "code_interpreter"},
        max_output_tokens=400,
    )
    calls = [item for item in response.output if item.type == "code_interpreter_call"]
    assert calls, shown(response, server)
    ran = [call for call in calls if call.status in ("completed", "failed")]
    assert ran, [(c.status, c.code) for c in calls]
    first = ran[0]
    assert first.container_id.startswith("cntr_") and isinstance(first.code, str)
    assert first.outputs and first.outputs[0].type == "logs" and first.outputs[0].logs
    # The call's result went back to the model: a later item exists (its next round).
    assert response.output.index(first) < len(response.output) - 1 or response.status != "completed"


def test_a_forced_web_search_calls_the_search_endpoint(engine_server):
    with search_endpoint() as (url, seen):
        server = engine_server(web_search_backend=url)
        response = client_for(server).responses.create(
            model=server.model,
            input="Search the web for the Harmony response format.",
            tools=[{"type": "web_search"}],
            tool_choice={"type": "web_search_preview"},
            max_output_tokens=400,
        )
    searches = [item for item in response.output if item.type == "web_search_call"]
    assert searches, shown(response, server)
    first = searches[0]
    assert first.status in ("completed", "failed") and first.action.type == "search"
    assert isinstance(first.action.query, str) and first.action.query.strip()
    queries = [parse_qs(urlsplit(path).query)["q"][0] for path in seen]
    assert first.action.query in queries
