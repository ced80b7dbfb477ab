"""The caller identity the edge derives from an API key."""

from __future__ import annotations

from proxy.core.caller import ANONYMOUS, caller_for_key, caller_of, key_fingerprint


def test_an_unnamed_key_is_named_by_its_fingerprint_never_by_the_key() -> None:
    caller = caller_for_key(b"sk-secret-123")
    assert "sk-secret" not in caller.name and "sk-secret" not in caller.owner
    assert caller.name == "key-" + key_fingerprint(b"sk-secret-123")[:12]
    assert caller.owner == "key:" + key_fingerprint(b"sk-secret-123")


def test_keys_sharing_a_name_share_an_owner() -> None:
    assert caller_for_key(b"old", "alice").owner == caller_for_key(b"new", "alice").owner
    assert caller_for_key(b"old").owner != caller_for_key(b"new").owner


def test_a_scope_without_a_caller_is_anonymous() -> None:
    assert caller_of({"state": {}}) is ANONYMOUS
    caller = caller_for_key(b"k")
    assert caller_of({"state": {"caller": caller}}) is caller
