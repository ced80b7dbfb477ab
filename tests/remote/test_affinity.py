"""PrefixRouter: longest remembered prefix wins, within the load bound; otherwise least loaded."""

from __future__ import annotations

import pytest

from proxy.backends.affinity import PrefixRouter, block_hashes

BLOCK = 4


def prompt(*blocks: int, tail: int = 0) -> list[int]:
    """Prompt tokens made of whole blocks (block value v -> BLOCK tokens of v) plus a tail."""
    return [v for v in blocks for _ in range(BLOCK)] + list(range(1000, 1000 + tail))


def test_block_hashes_chain_over_the_whole_prefix():
    a, b = block_hashes(prompt(1, 2, tail=3), BLOCK), block_hashes(prompt(9, 2), BLOCK)
    assert len(a) == 2 and len(b) == 2
    assert a[1] != b[1]  # same second block, different first: different prefixes
    assert block_hashes(prompt(1, 2, 3), BLOCK)[:2] == a


def test_a_growing_conversation_returns_to_its_replica():
    router = PrefixRouter(block_tokens=BLOCK)
    first = router.choose(prompt(1, 2), {0: 0, 1: 0})
    router.record(prompt(1, 2), first.replica)
    again = router.choose(prompt(1, 2, 3, 4, tail=2), {0: 0, 1: 0})
    assert again.replica == first.replica and again.affinity_hit
    assert again.matched_tokens == 2 * BLOCK


def test_an_overloaded_owner_loses_new_requests_to_the_least_loaded():
    router = PrefixRouter(block_tokens=BLOCK, load_factor=1.25)
    router.record(prompt(1, 2), 0)
    assert router.choose(prompt(1, 2, 3), {0: 1, 1: 0}).replica == 0  # within the bound
    spilled = router.choose(prompt(1, 2, 3), {0: 3, 1: 0})
    assert spilled.replica == 1 and not spilled.affinity_hit


def test_unknown_prompts_go_to_the_least_loaded():
    router = PrefixRouter(block_tokens=BLOCK)
    assert router.choose(prompt(7, 8), {0: 5, 1: 2, 2: 3}).replica == 1


def test_excluded_and_forgotten_replicas_are_not_chosen():
    router = PrefixRouter(block_tokens=BLOCK)
    router.record(prompt(1, 2), 1)
    assert router.choose(prompt(1, 2), {0: 0, 1: 0}, exclude={1}).replica == 0
    assert router.choose(prompt(1, 2), {0: 0, 1: 0}, exclude={0, 1}) is None
    router.forget(1)
    assert not router.choose(prompt(1, 2), {0: 0, 1: 0}).affinity_hit


def test_disabled_affinity_only_balances():
    router = PrefixRouter(block_tokens=BLOCK, enabled=False)
    router.record(prompt(1, 2), 1)
    choice = router.choose(prompt(1, 2), {0: 0, 1: 1})
    assert choice.replica == 0 and not choice.affinity_hit


def test_memory_is_bounded():
    router = PrefixRouter(block_tokens=BLOCK, capacity=3)
    for v in range(10):
        router.record(prompt(v), 0)
    assert len(router._owners) == 3


@pytest.mark.parametrize("kwargs", [{"block_tokens": 0}, {"load_factor": 0.5}])
def test_invalid_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        PrefixRouter(**kwargs)


def test_a_client_cache_key_keeps_a_session_on_its_replica_before_any_full_block():
    """Responses `prompt_cache_key`: short prompts of one session share a replica; another
    session's identical prompt is not claimed by the key's owner."""
    router = PrefixRouter(block_tokens=BLOCK)
    short = prompt(tail=2)  # shorter than a block: no prefix hash of its own
    assert block_hashes(short, BLOCK) == [] and len(block_hashes(short, BLOCK, "s1")) == 1
    first = router.choose(short, {0: 0, 1: 0}, key="s1")
    router.record(short, first.replica, key="s1")
    for _ in range(5):
        again = router.choose(prompt(tail=3), {0: 0, 1: 0}, key="s1")
        assert again.replica == first.replica and again.affinity_hit
    assert block_hashes(prompt(1), BLOCK, "s1")[1] != block_hashes(prompt(1), BLOCK, "s2")[1]
    assert not router.choose(short, {0: 0, 1: 0}, key="s2").affinity_hit
