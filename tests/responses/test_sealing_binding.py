"""What a sealed reasoning token is bound to (issue 20, item 4): its owner, its model and its
age; and the keyring that lets keys rotate. Every refusal is the one `REFUSED` message, so a
refusal never tells a prober whether the token belongs to somebody else."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from proxy.core.sealing import (
    DEFAULT_TTL_SECONDS,
    REFUSED,
    ReasoningSealer,
    SealError,
)
from proxy.server.cli import parse_settings
from proxy.server.flags import duration_seconds

OLD_KEY = bytes(range(32))
NEW_KEY = bytes(range(100, 132))
NEXT_KEY = bytes(range(200, 232))
OWNER, MODEL = "name:alice", "gpt-oss-demo"


class Clock:
    """A settable clock (seconds since the epoch), injected into the sealer."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def refused(sealer: ReasoningSealer, token: str, owner: str = OWNER, model: str = MODEL) -> str:
    with pytest.raises(SealError) as caught:
        sealer.open(token, owner=owner, model=model)
    return str(caught.value)


def b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def test_a_token_opens_for_its_owner_and_model() -> None:
    sealer = ReasoningSealer(NEW_KEY)
    token = sealer.seal("call the weather tool", owner=OWNER, model=MODEL)
    assert sealer.open(token, owner=OWNER, model=MODEL) == "call the weather tool"
    assert sealer.bound(OWNER, MODEL).open(token) == "call the weather tool"


def test_another_owner_is_refused_like_a_tampered_token() -> None:
    sealer = ReasoningSealer(NEW_KEY)
    token = sealer.seal("alice's plan", owner=OWNER, model=MODEL)
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert refused(sealer, token, owner="name:mallory") == refused(sealer, tampered) == REFUSED
    # Owners are length-prefixed in the associated data: no splicing of owner and model.
    assert refused(sealer, token, owner="name:alicegpt-oss-", model="demo") == REFUSED


def test_another_model_is_refused_like_a_tampered_token() -> None:
    sealer = ReasoningSealer(NEW_KEY)
    token = sealer.seal("plan", owner=OWNER, model=MODEL)
    assert refused(sealer, token, model="gpt-oss-120b") == REFUSED


def test_a_token_of_the_other_purpose_is_refused() -> None:
    sealer = ReasoningSealer(NEW_KEY)
    signature = sealer.for_purpose("anthropic thinking").seal("plan", owner=OWNER, model=MODEL)
    assert refused(sealer, signature) == REFUSED


def test_an_expired_token_is_refused_like_a_tampered_token() -> None:
    clock = Clock()
    sealer = ReasoningSealer(NEW_KEY, ttl_seconds=3600, clock=clock)
    token = sealer.seal("plan", owner=OWNER, model=MODEL)
    clock.now += 3600
    assert sealer.open(token, owner=OWNER, model=MODEL) == "plan"  # the last second of its life
    clock.now += 1
    assert refused(sealer, token) == REFUSED


def test_the_issue_time_is_authenticated() -> None:
    """Rewriting the clear issue time to look younger breaks the seal."""
    clock = Clock()
    sealer = ReasoningSealer(NEW_KEY, ttl_seconds=60, clock=clock)
    token = sealer.seal("plan", owner=OWNER, model=MODEL)
    raw = bytearray(base64.urlsafe_b64decode(token[5:] + "=" * (-len(token[5:]) % 4)))
    clock.now += 3600
    raw[4:12] = int(clock.now).to_bytes(8, "big")
    younger = "hpr2." + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    assert refused(sealer, younger) == REFUSED


def test_a_token_from_the_future_is_refused_beyond_clock_skew() -> None:
    clock = Clock()
    ahead = ReasoningSealer(NEW_KEY, clock=Clock(clock.now + 60))  # a replica 1 min ahead
    assert (
        ReasoningSealer(NEW_KEY, clock=clock).open(
            ahead.seal("x", owner=OWNER, model=MODEL), owner=OWNER, model=MODEL
        )
        == "x"
    )
    far = ReasoningSealer(NEW_KEY, clock=Clock(clock.now + 3600))
    token = far.seal("x", owner=OWNER, model=MODEL)
    assert refused(ReasoningSealer(NEW_KEY, clock=clock), token) == REFUSED


def test_rotation_old_tokens_open_under_a_previous_key() -> None:
    before = ReasoningSealer(OLD_KEY)
    token = before.seal("sealed before the rotation", owner=OWNER, model=MODEL)
    after = ReasoningSealer(NEW_KEY, previous=[OLD_KEY])
    assert after.open(token, owner=OWNER, model=MODEL) == "sealed before the rotation"
    # New tokens are sealed under the new key: a server still on the old key alone refuses them.
    fresh = after.seal("sealed after", owner=OWNER, model=MODEL)
    assert after.key_id == ReasoningSealer(NEW_KEY).key_id
    assert refused(before, fresh) == REFUSED
    assert ReasoningSealer(NEW_KEY).open(fresh, owner=OWNER, model=MODEL) == "sealed after"


def test_rotation_a_removed_key_no_longer_opens() -> None:
    token = ReasoningSealer(OLD_KEY).seal("old", owner=OWNER, model=MODEL)
    removed = ReasoningSealer(NEXT_KEY, previous=[NEW_KEY])
    assert refused(removed, token) == REFUSED


def test_previous_keys_are_bound_like_the_current_one() -> None:
    token = ReasoningSealer(OLD_KEY).seal("old", owner=OWNER, model=MODEL)
    after = ReasoningSealer(NEW_KEY, previous=[OLD_KEY])
    assert refused(after, token, owner="name:mallory") == REFUSED


def test_key_file_lines_after_the_first_are_previous_keys(tmp_path: Path) -> None:
    token = ReasoningSealer(OLD_KEY).seal("old", owner=OWNER, model=MODEL)
    key_file = tmp_path / "reasoning.key"
    key_file.write_text(f"# rotated 2026-12-03\n{b64(NEW_KEY)}\n\n{b64(OLD_KEY)}\n")
    key_file.chmod(0o600)
    sealer = ReasoningSealer.load(None, key_file)
    assert sealer.key_id == ReasoningSealer(NEW_KEY).key_id  # the first line seals
    assert sealer.open(token, owner=OWNER, model=MODEL) == "old"
    key_file.write_text(f"{b64(NEW_KEY)}\n")  # the old key removed
    assert refused(ReasoningSealer.load(None, key_file), token) == REFUSED


def test_previous_key_flags_join_the_given_key(tmp_path: Path) -> None:
    token = ReasoningSealer(OLD_KEY).seal("old", owner=OWNER, model=MODEL)
    sealer = ReasoningSealer.load(b64(NEW_KEY), tmp_path / "unused", previous=[b64(OLD_KEY)])
    assert sealer.open(token, owner=OWNER, model=MODEL) == "old"
    assert not (tmp_path / "unused").exists()
    with pytest.raises(ValueError, match="a previous reasoning key is not base64"):
        ReasoningSealer.load(b64(NEW_KEY), tmp_path / "unused", previous=["nope!"])


def test_an_empty_key_file_is_a_clear_error(tmp_path: Path) -> None:
    key_file = tmp_path / "reasoning.key"
    key_file.write_text("# no keys yet\n")
    with pytest.raises(ValueError, match=f"key file {key_file} is not base64"):
        ReasoningSealer.load(None, key_file)


def test_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError, match="TTL must be positive"):
        ReasoningSealer(NEW_KEY, ttl_seconds=0)
    assert ReasoningSealer(NEW_KEY).ttl_seconds == DEFAULT_TTL_SECONDS == 30 * 86400


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3600", 3600), ("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600)]
    + [("1.5h", 5400), (" 7D ", 604800)],
)
def test_reasoning_ttl_reads_seconds_or_a_duration(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("bad", ["", "d", "7 days", "1y", "nan", "inf", "-"])
def test_a_bad_duration_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        duration_seconds(bad)


def test_the_flags_reach_the_app_configuration() -> None:
    argv = ["serve", "--reasoning-ttl", "12h", "--require-sealed-reasoning"]
    argv += ["--reasoning-previous-key", b64(OLD_KEY), "--reasoning-previous-key", b64(NEW_KEY)]
    config = parse_settings([*argv, "--shared-prefix-cache"], environ={}).proxy_config(None)
    assert config.reasoning_ttl_seconds == 43200
    assert config.reasoning_previous_keys == (b64(OLD_KEY), b64(NEW_KEY))
    assert config.require_sealed_reasoning and config.shared_prefix_cache
    defaults = parse_settings(["serve"], environ={}).proxy_config(None)
    assert defaults.reasoning_ttl_seconds == DEFAULT_TTL_SECONDS
    assert not defaults.require_sealed_reasoning and not defaults.shared_prefix_cache


# -- SIGHUP: the key file read again -----------------------------------------------------------


def test_a_reload_rotates_the_key_file_for_every_purpose(tmp_path: Path) -> None:
    key_file = tmp_path / "reasoning.key"
    key_file.write_text(b64(OLD_KEY) + "\n")
    sealer = ReasoningSealer.load(None, key_file)
    thinking = sealer.for_purpose("thinking")
    old_token = sealer.seal("before", owner=OWNER, model=MODEL)
    old_id = sealer.key_id

    key_file.write_text(f"{b64(NEW_KEY)}\n{b64(OLD_KEY)}\n")  # the rotation's first step
    assert sealer.reload()
    assert sealer.key_id != old_id and thinking.key_id == sealer.key_id
    new_token = thinking.seal("after", owner=OWNER, model=MODEL)
    assert thinking.open(new_token, owner=OWNER, model=MODEL) == "after"
    assert sealer.open(old_token, owner=OWNER, model=MODEL) == "before"  # still opens

    key_file.write_text(b64(NEW_KEY) + "\n")  # after the TTL: the old key removed
    assert sealer.reload()
    assert refused(sealer, old_token) == REFUSED


def test_a_bad_key_file_on_reload_keeps_the_current_keys(tmp_path: Path) -> None:
    key_file = tmp_path / "reasoning.key"
    key_file.write_text(b64(OLD_KEY) + "\n")
    sealer = ReasoningSealer.load(None, key_file, previous=[b64(NEXT_KEY)])
    token = sealer.seal("kept", owner=OWNER, model=MODEL)
    key_file.write_text("not a key\n")
    assert not sealer.reload()
    assert sealer.open(token, owner=OWNER, model=MODEL) == "kept"
    flagged = ReasoningSealer.load(b64(NEW_KEY), key_file)
    assert not flagged.reload()  # a key given as a flag is not the file's to change


def test_previous_key_flags_survive_a_reload(tmp_path: Path) -> None:
    key_file = tmp_path / "reasoning.key"
    key_file.write_text(b64(NEW_KEY) + "\n")
    old = ReasoningSealer(NEXT_KEY).seal("older", owner=OWNER, model=MODEL)
    sealer = ReasoningSealer.load(None, key_file, previous=[b64(NEXT_KEY)])
    key_file.write_text(b64(OLD_KEY) + "\n")
    assert sealer.reload()
    assert sealer.open(old, owner=OWNER, model=MODEL) == "older"
