"""VllmBackend against the real vLLM engine on the demo model."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest

from proxy.backends.base import (
    DEFAULT_STOP_TOKEN_IDS,
    EngineBackend,
    EngineNotReady,
    EngineRefused,
    GenerationChunk,
    SamplingConfig,
)
from proxy.backends.vllm_engine import VllmBackend
from proxy.backends.vllm_options import EngineOptions

RETURN, END, CALL = 200002, 200007, 200012
_ids = itertools.count()


def request_id() -> str:
    return f"engine-test-{next(_ids)}"


@pytest.fixture(scope="module")
def prompt() -> list[int]:
    """A rendered Harmony prompt, as the proxy sends it (ends with <|start|>assistant)."""
    from harmony import (
        Conversation,
        HarmonyEncodingName,
        Message,
        Role,
        SystemContent,
        load_harmony_encoding,
    )

    enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    conversation = Conversation.from_messages(
        [
            Message.from_role_and_content(Role.SYSTEM, SystemContent.new()),
            Message.from_role_and_content(Role.USER, "What is the capital of France?"),
        ]
    )
    return list(enc.render_conversation_for_completion(conversation, Role.ASSISTANT))


def collect(background_loop, backend, prompt, sampling, rid=None) -> list[GenerationChunk]:
    async def run() -> list[GenerationChunk]:
        return [chunk async for chunk in backend.generate(prompt, sampling, rid or request_id())]

    return background_loop.run(run(), timeout=300)


def tokens_of(chunks: list[GenerationChunk], index: int = 0) -> list[int]:
    return [t for c in chunks if c.index == index for t in c.token_ids]


def test_backend_implements_the_engine_protocol():
    assert isinstance(VllmBackend(EngineOptions(model="unused")), EngineBackend)


def test_sampling_params_are_marked_not_to_be_deep_copied():
    """Built per request and never shared, so vLLM's add_request may skip its deep copy (as
    vLLM's own API server marks its params); a clone is then shallow and keeps our settings."""
    from vllm.sampling_params import RequestOutputKind

    backend = VllmBackend(EngineOptions(model="unused"))
    params = backend.sampling_params(SamplingConfig(max_tokens=4, stop_token_ids=(200002,)))
    assert params.skip_clone is True
    clone = params.clone()
    assert clone is not params
    assert clone.output_kind is RequestOutputKind.DELTA
    assert clone.stop_token_ids == [200002] and clone.max_tokens == 4


def test_generate_before_start_raises_engine_not_ready(background_loop):
    backend = VllmBackend(EngineOptions(model="unused"))
    assert not backend.ready
    with pytest.raises(EngineNotReady):
        collect(background_loop, backend, [1, 2, 3], SamplingConfig(max_tokens=4))


@pytest.mark.engine
def test_started_engine_is_ready_and_healthy(background_loop, vllm_backend):
    assert vllm_backend.ready
    background_loop.run(vllm_backend.check_health())
    assert vllm_backend.max_model_len == 2048
    assert vllm_backend.model_name == "gpt-oss-demo"


@pytest.mark.engine
def test_a_started_engine_leaves_vllms_environment_settings_cached(background_loop, vllm_backend):
    """vLLM's front end reads `VLLM_*` settings per engine output; once the engine is up they
    come from vLLM's cache, not from `os.environ` on every read."""
    from vllm import envs

    assert envs._is_envs_cache_enabled()


def test_the_cache_is_lifted_while_an_engine_is_configured():
    """A later engine in the same process (`_load` lifts the cache first) sees settings changed
    after the first one loaded; with the cache on, it would not."""
    envs = pytest.importorskip("vllm.envs")

    from proxy.backends.vllm_engine import cache_vllm_environment

    was_cached = envs._is_envs_cache_enabled()
    with pytest.MonkeyPatch.context() as patch:
        try:
            cache_vllm_environment(False)  # (the session's engine may have cached them)
            patch.setenv("VLLM_CPU_KVCACHE_SPACE", "3")
            cache_vllm_environment(True)
            patch.setenv("VLLM_CPU_KVCACHE_SPACE", "5")
            assert envs.VLLM_CPU_KVCACHE_SPACE == 3  # cached: the change is not seen
            cache_vllm_environment(False)
            assert envs.VLLM_CPU_KVCACHE_SPACE == 5
        finally:
            cache_vllm_environment(False)
    # (the environment restored first, so a cache put back holds the session's own settings)
    cache_vllm_environment(was_cached)


@pytest.mark.engine
def test_stream_ends_on_a_stop_token_that_is_included(background_loop, vllm_backend, prompt):
    chunks = collect(background_loop, vllm_backend, prompt, SamplingConfig(max_tokens=200))
    tokens = tokens_of(chunks)
    assert [c.finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].stop_token_id in DEFAULT_STOP_TOKEN_IDS
    assert tokens[-1] == chunks[-1].stop_token_id
    assert tokens.count(chunks[-1].stop_token_id) == 1


@pytest.mark.engine
def test_deltas_concatenate_to_the_same_completion_as_one_piece(
    background_loop, vllm_backend, prompt
):
    sampling = SamplingConfig(max_tokens=200, temperature=0.0)
    chunks = collect(background_loop, vllm_backend, prompt, sampling)
    again = collect(background_loop, vllm_backend, prompt, sampling)
    assert len(chunks) > 1  # streamed, not delivered at the end
    assert all(c.token_ids for c in chunks[:-1])
    assert tokens_of(chunks) == tokens_of(again)


@pytest.mark.engine
def test_max_tokens_ends_the_choice_with_length(background_loop, vllm_backend, prompt):
    chunks = collect(background_loop, vllm_backend, prompt, SamplingConfig(max_tokens=3))
    assert len(tokens_of(chunks)) == 3
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].stop_token_id is None


@pytest.mark.engine
def test_explicit_stop_token_ids_decide_where_generation_ends(
    background_loop, vllm_backend, prompt
):
    # The demo model always reasons first, so <|end|> closes its analysis message.
    sampling = SamplingConfig(max_tokens=200, stop_token_ids=(END,))
    chunks = collect(background_loop, vllm_backend, prompt, sampling)
    tokens = tokens_of(chunks)
    assert tokens[-1] == END and END not in tokens[:-1]
    assert RETURN not in tokens and CALL not in tokens
    assert (chunks[-1].finish_reason, chunks[-1].stop_token_id) == ("stop", END)


@pytest.mark.engine
def test_n_choices_stream_under_their_own_index(background_loop, vllm_backend, prompt):
    sampling = SamplingConfig(max_tokens=200, n=3, temperature=1.0, seed=5)
    chunks = collect(background_loop, vllm_backend, prompt, sampling)
    assert {c.index for c in chunks} == {0, 1, 2}
    for index in range(3):
        finals = [c for c in chunks if c.index == index and c.finish_reason is not None]
        assert len(finals) == 1
        assert tokens_of(chunks, index)[-1] == finals[0].stop_token_id


@pytest.mark.engine
def test_the_same_seed_reproduces_a_sampled_completion(background_loop, vllm_backend, prompt):
    def sampled(seed: int) -> list[int]:
        sampling = SamplingConfig(max_tokens=60, temperature=1.5, seed=seed)
        return tokens_of(collect(background_loop, vllm_backend, prompt, sampling))

    first = sampled(11)
    assert sampled(11) == first
    assert any(sampled(seed) != first for seed in (12, 13, 14, 15))


@pytest.mark.engine
def test_logprobs_cover_every_generated_token(background_loop, vllm_backend, prompt):
    sampling = SamplingConfig(max_tokens=20, logprobs=2)
    for chunk in collect(background_loop, vllm_backend, prompt, sampling):
        assert chunk.logprobs is not None and len(chunk.logprobs) == len(chunk.token_ids)
        for token, top in zip(chunk.token_ids, chunk.logprobs, strict=True):
            assert token in top and all(value <= 0.0 for value in top.values())


@pytest.mark.engine
def test_a_repeated_prompt_reports_cached_prompt_tokens(background_loop, vllm_backend, prompt):
    # The prefix cache works in whole KV blocks (128 tokens on CPU): use a prompt spanning several.
    long_prompt = prompt[:-7] + prompt[-7:-5] * 200 + prompt[-7:]
    sampling = SamplingConfig(max_tokens=2)
    first = collect(background_loop, vllm_backend, long_prompt, sampling)
    chunks = collect(background_loop, vllm_backend, long_prompt, sampling)
    assert first[0].cached_prompt_tokens == 0
    assert chunks[0].cached_prompt_tokens is not None and chunks[0].cached_prompt_tokens >= 128
    assert all(c.cached_prompt_tokens is None for c in chunks[1:])


async def _wait_until_idle(backend: VllmBackend, seconds: float = 10.0) -> int:
    for _ in range(int(seconds / 0.05)):
        if backend.num_unfinished_requests() == 0:
            return 0
        await asyncio.sleep(0.05)
    return backend.num_unfinished_requests()


@pytest.mark.engine
def test_closing_the_stream_early_aborts_the_request(background_loop, vllm_backend, prompt):
    # No stop tokens and a large budget: only an abort can end this request quickly.
    sampling = SamplingConfig(max_tokens=1500, stop_token_ids=())

    async def run() -> tuple[int, int]:
        stream = vllm_backend.generate(prompt, sampling, request_id())
        await anext(stream)
        busy = vllm_backend.num_unfinished_requests()
        await stream.aclose()
        return busy, await _wait_until_idle(vllm_backend)

    busy, left = background_loop.run(run())
    assert busy == 1
    assert left == 0


@pytest.mark.engine
def test_cancelling_the_consumer_aborts_the_request(background_loop, vllm_backend, prompt):
    sampling = SamplingConfig(max_tokens=1500, stop_token_ids=())

    async def run() -> int:
        async def consume() -> None:
            async for _ in vllm_backend.generate(prompt, sampling, request_id()):
                pass

        task = asyncio.create_task(consume())
        while vllm_backend.num_unfinished_requests() == 0:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await _wait_until_idle(vllm_backend)

    assert background_loop.run(run()) == 0


@pytest.mark.engine
def test_abort_by_request_id_ends_the_stream(background_loop, vllm_backend, prompt):
    sampling = SamplingConfig(max_tokens=1500, stop_token_ids=())
    rid = request_id()

    async def run() -> tuple[list[GenerationChunk], int]:
        chunks: list[GenerationChunk] = []
        async for chunk in vllm_backend.generate(prompt, sampling, rid):
            chunks.append(chunk)
            if len(chunks) == 1:
                await vllm_backend.abort(rid)
        return chunks, await _wait_until_idle(vllm_backend)

    chunks, left = background_loop.run(run())
    assert left == 0
    assert len(tokens_of(chunks)) < 1500
    assert chunks[-1].finish_reason in (None, "abort")


def decode(tokens: list[int]) -> str:
    from harmony import HarmonyEncodingName, load_harmony_encoding

    enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    return enc.decode([t for t in tokens if t not in DEFAULT_STOP_TOKEN_IDS])


@pytest.mark.engine
def test_a_json_schema_constrains_the_generated_text(background_loop, vllm_backend, prompt):
    # Unconstrained, the demo model would start with <|channel|>analysis: the schema overrides it.
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "enum": ["Paris", "Rome", "Oslo"]},
            "sunny": {"type": "boolean"},
        },
        "required": ["city", "sunny"],
        "additionalProperties": False,
    }
    sampling = SamplingConfig(
        max_tokens=60, temperature=1.0, seed=3, structured_outputs={"json": schema}
    )
    chunks = collect(background_loop, vllm_backend, prompt, sampling)
    assert chunks[-1].finish_reason == "stop"
    value = json.loads(decode(tokens_of(chunks)))
    assert set(value) == {"city", "sunny"}
    assert value["city"] in ("Paris", "Rome", "Oslo") and isinstance(value["sunny"], bool)


@pytest.mark.engine
def test_a_choice_constraint_yields_exactly_one_choice(background_loop, vllm_backend, prompt):
    sampling = SamplingConfig(
        max_tokens=20,
        temperature=1.0,
        seed=4,
        structured_outputs={"choice": ["red", "green", "blue"]},
    )
    chunks = collect(background_loop, vllm_backend, prompt, sampling)
    assert decode(tokens_of(chunks)) in ("red", "green", "blue")


@pytest.mark.engine
def test_a_prompt_longer_than_the_context_is_rejected_as_a_bad_request(
    background_loop, vllm_backend, prompt
):
    too_long = prompt[:-2] * (3000 // len(prompt) + 1) + prompt[-2:]
    with pytest.raises(EngineRefused):
        collect(background_loop, vllm_backend, too_long, SamplingConfig(max_tokens=4))
    assert vllm_backend.ready
    assert collect(background_loop, vllm_backend, prompt, SamplingConfig(max_tokens=4))
