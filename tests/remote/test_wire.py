"""remote_wire: request bodies and streamed chunks of both vLLM protocols (pure functions)."""

from __future__ import annotations

import asyncio
import json

import pytest

from proxy.backends.base import SamplingConfig
from proxy.backends.remote import RemoteBackend
from proxy.backends.remote_wire import (
    SseLines,
    UpstreamError,
    cached_tokens,
    chunks_from_payload,
    completions_body,
    generate_body,
    parse_event,
)

SAMPLING = SamplingConfig(max_tokens=8, seed=3, logprobs=2, structured_outputs={"json": {}})


def test_generate_body_is_token_ids_and_vllm_sampling_params():
    body = generate_body([1, 2], SAMPLING, "req", "m")
    assert (body["token_ids"], body["request_id"], body["stream"]) == ([1, 2], "req", True)
    params = body["sampling_params"]
    assert params["detokenize"] is False and params["skip_special_tokens"] is False
    assert params["structured_outputs"] == {"json": {}}
    assert (params["seed"], params["logprobs"], params["max_tokens"]) == (3, 2, 8)


def test_completions_body_asks_for_token_ids():
    body = completions_body([1, 2], SAMPLING, "req", "m")
    assert body["prompt"] == [1, 2] and body["return_token_ids"] is True
    assert body["return_tokens_as_token_ids"] is True
    assert body["stop_token_ids"] == list(SAMPLING.stop_token_ids)


def test_generate_chunks_carry_stop_tokens_and_logprobs():
    payload = {
        "choices": [
            {
                "index": 0,
                "token_ids": [5, 200002],
                "finish_reason": "stop",
                "stop_reason": 200002,
                "logprobs": {
                    "content": [
                        {
                            "token_id": 5,
                            "logprob": -0.1,
                            "top_logprobs": [{"token_id": 6, "logprob": -2.0}],
                        },
                        {"token_id": 200002, "logprob": -0.2, "top_logprobs": []},
                    ]
                },
            }
        ]
    }
    (chunk,) = chunks_from_payload(payload, SAMPLING, "generate")
    assert (chunk.token_ids, chunk.finish_reason, chunk.stop_token_id) == (
        [5, 200002],
        "stop",
        200002,
    )
    assert chunk.logprobs == [{5: -0.1, 6: -2.0}, {200002: -0.2}]


def test_completions_chunks_read_token_ids_not_text():
    payload = {
        "choices": [
            {
                "index": 1,
                "text": "ignored",
                "token_ids": [7],
                "finish_reason": None,
                "logprobs": {
                    "tokens": ["token_id:7"],
                    "token_logprobs": [-0.5],
                    "top_logprobs": [{"token_id:7": -0.5, "token_id:8": -1.5}],
                },
            }
        ]
    }
    (chunk,) = chunks_from_payload(payload, SAMPLING, "completions")
    assert (chunk.index, chunk.token_ids, chunk.finish_reason) == (1, [7], None)
    assert chunk.logprobs == [{7: -0.5, 8: -1.5}]


def test_usage_chunks_report_prefix_cache_hits():
    assert cached_tokens({"usage": {"prompt_tokens_details": {"cached_tokens": 64}}}) == 64
    assert cached_tokens({"usage": None}) is None


def test_error_events_become_upstream_errors_with_their_status():
    with pytest.raises(UpstreamError) as caught:
        parse_event('data: {"error": {"message": "too long", "code": 400}}')
    assert (caught.value.status, caught.value.message) == (400, "too long")
    assert parse_event("data: [DONE]") is None and parse_event(": ping") is None


async def test_a_token_is_passed_on_before_the_next_event_arrives():
    """Only a finishing chunk waits for the usage event after it; the others go out at once
    (holding each until the next event put every token one engine step late)."""
    release = asyncio.Event()

    async def events():
        yield b'data: {"choices": [{"index": 0, "token_ids": [11]}]}\n\n'
        await release.wait()
        yield b'data: {"choices": [{"index": 0, "token_ids": [12], "finish_reason": "stop"}]}\n\n'
        usage = {
            "prompt_tokens": 3,
            "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 2},
        }
        yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode()

    async def replica(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        async for part in events():
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(replica, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    backend = RemoteBackend(f"http://127.0.0.1:{port}")
    backend.started = backend.healthy = True
    backend.protocol = "generate"
    stream = backend.generate([1, 2, 3], SamplingConfig(max_tokens=8), "req-1")
    first = await asyncio.wait_for(anext(stream), timeout=5)
    assert first.token_ids == [11] and first.finish_reason is None
    release.set()
    last = [chunk async for chunk in stream]
    assert [c.token_ids for c in last] == [[12]]
    assert last[0].finish_reason == "stop" and last[0].cached_prompt_tokens == 2
    await backend.shutdown()
    server.close()
    await server.wait_closed()


def test_sse_lines_come_whole_whatever_the_blocks():
    """Events split anywhere across blocks, LF or CR LF, several per block; an unfinished last
    line (no newline before the body ended) is never returned."""
    stream = b'data: {"a": 1}\r\n\r\ndata: {"b": 2}\n\n: ping\n\ndata: [DONE]\n\ndata: {"c"'
    for size in (1, 2, 7, len(stream)):
        lines = SseLines()
        out = []
        for start in range(0, len(stream), size):
            out += lines.feed(stream[start : start + size])
        assert [line for line in out if line] == [
            b'data: {"a": 1}',
            b'data: {"b": 2}',
            b": ping",
            b"data: [DONE]",
        ]
        assert [parse_event(line) for line in out if parse_event(line)] == [{"a": 1}, {"b": 2}]
