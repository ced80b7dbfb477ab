"""`ChunkReader`'s promises the streaming tests cannot pin down by timing: it reads at most
`MAX_QUEUED` chunks ahead of a consumer that stopped taking them (a client that stops reading
still holds the engine back), a patient wait still wakes at once for a choice's first chunk and
for a finish, and queued chunks are joined only when their logprobs stay one per token."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from proxy.backends.base import GenerationChunk
from proxy.core.chunk_reader import MAX_QUEUED, ChunkReader


def test_the_reader_stops_reading_ahead_at_its_bound() -> None:
    pulled = 0

    async def engine() -> AsyncIterator[GenerationChunk]:
        nonlocal pulled
        for token in range(10 * MAX_QUEUED):
            pulled += 1
            yield GenerationChunk(index=0, token_ids=[token])
            await asyncio.sleep(0)

    async def main() -> tuple[int, int]:
        reader = ChunkReader(engine())
        await asyncio.sleep(0.2)  # a consumer that takes nothing
        before = pulled
        first = await reader.next(None)  # taking the queue makes room again
        assert isinstance(first, GenerationChunk)
        await asyncio.sleep(0.2)
        after = pulled
        await reader.close()
        return before, len(first.token_ids), after

    before, taken, after = asyncio.run(main())
    assert before == MAX_QUEUED
    assert taken == MAX_QUEUED  # the queued chunks of one choice came as one
    assert after == 2 * MAX_QUEUED


def test_a_patient_wait_wakes_for_a_first_chunk_and_a_finish() -> None:
    async def main() -> list[float]:
        release = [asyncio.Event(), asyncio.Event()]

        async def engine() -> AsyncIterator[GenerationChunk]:
            yield GenerationChunk(index=0, token_ids=[1])
            await release[0].wait()
            yield GenerationChunk(index=1, token_ids=[2])  # choice 1's first chunk
            await release[1].wait()
            yield GenerationChunk(index=0, token_ids=[3], finish_reason="stop")
            await asyncio.sleep(30)  # the engine lingers after the finish

        reader = ChunkReader(engine())
        assert (await reader.next(None)).token_ids == [1]
        waits = []
        for event in release:
            asyncio.get_running_loop().call_later(0.05, event.set)
            began = time.monotonic()
            chunk = await reader.next(time.monotonic() + 10, patient=True)
            waits.append(time.monotonic() - began)
            assert isinstance(chunk, GenerationChunk)
        await reader.close()
        return waits

    assert all(wait < 2 for wait in asyncio.run(main()))  # not the 10 s deadline


def test_queued_chunks_join_only_with_aligned_logprobs() -> None:
    chunks = [
        GenerationChunk(index=0, token_ids=[1, 2], logprobs=[{1: -0.1}, {2: -0.2}]),
        GenerationChunk(index=0, token_ids=[3], logprobs=[{3: -0.3}]),
        GenerationChunk(index=0, token_ids=[4, 5], logprobs=[{4: -0.4}]),  # one short
        GenerationChunk(index=0, token_ids=[6], logprobs=[{6: -0.6}], finish_reason="stop"),
    ]

    async def main() -> list[GenerationChunk]:
        async def engine() -> AsyncIterator[GenerationChunk]:
            for chunk in chunks:
                yield chunk

        reader = ChunkReader(engine())
        await asyncio.sleep(0.05)  # all four queued
        taken = []
        while isinstance(chunk := await reader.next(None), GenerationChunk):
            taken.append(chunk)
        return taken

    taken = asyncio.run(main())
    assert [c.token_ids for c in taken] == [[1, 2, 3], [4, 5], [6]]
    assert taken[0].logprobs == [{1: -0.1}, {2: -0.2}, {3: -0.3}]
    assert taken[-1].finish_reason == "stop"
