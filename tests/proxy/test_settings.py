"""`Settings`: every flag with its variable, read one way, checked once, passed as one value."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from proxy.server.cli import build_parser, parse_settings
from proxy.server.settings import Flag, Settings, SettingsError, flags

# A value for each flag other than its default, as the environment spells it, and as parsed.
# --warm-tools is read when the settings are parsed: the sample names a real file.
_WARM_TOOLS = Path(tempfile.gettempdir()) / "harmony-proxy-test-warm-tools.json"
_WARM_TOOLS.write_text(json.dumps([{"type": "function", "function": {"name": "get_time"}}]))

SAMPLES: dict[str, tuple[str, object]] = {
    "host": ("::1", "::1"),  # (a non-loopback host needs a key: tests/proxy/test_fail_closed.py)
    "port": ("9001", 9001),
    "api_key": ("k1, k2", ("k1", "k2")),
    "api_key_file": ("/run/secrets/keys", "/run/secrets/keys"),
    "allow_unauthenticated": ("yes", True),
    "metrics_key": ("scrape-key", "scrape-key"),
    "key_max_concurrent": ("4", 4),
    "key_tokens_per_minute": ("1000", 1000),
    "cors_origin": (
        "https://a.example,https://b.example",
        ("https://a.example", "https://b.example"),
    ),
    "workers": ("3", 3),
    "log_level": ("WARNING", "warning"),
    "max_connections": ("99", 99),
    "max_concurrent_requests": ("7", 7),
    "max_queued_requests": ("8", 8),
    "queue_timeout": ("1.5", 1.5),
    "max_body_bytes": ("1000", 1000),
    "body_deadline": ("2.5", 2.5),
    "max_messages": ("9", 9),
    "max_tools": ("9", 9),
    "max_tool_bytes": ("9000", 9000),
    "max_schema_depth": ("9", 9),
    "max_grammar_bytes": ("900", 900),
    "max_stop_strings": ("3", 3),
    "max_stop_length": ("99", 99),
    "max_past_tool_calls": ("99", 99),
    "max_n": ("3", 3),
    "max_metadata_pairs": ("3", 3),
    "max_metadata_key_length": ("9", 9),
    "max_metadata_value_length": ("99", 99),
    "max_model_length": ("99", 99),
    "max_user_length": ("99", 99),
    "plan_workers": ("3", 3),
    "send_timeout": ("4", 4.0),
    "drain_grace": ("5", 5.0),
    "date": ("2025-01-02", "2025-01-02"),
    "reasoning_effort": ("high", "high"),
    "default_max_tokens": ("0", 0),
    "enforce_auto_tool_calls": ("off", False),
    "response_store": ("postgresql://u@h/db", "postgresql://u@h/db"),
    "response_retention": ("0", 0),
    "response_max_age_days": ("0.5", 0.5),
    "response_retention_bytes": ("0", 0),
    "response_max_row_bytes": ("65536", 65536),
    "reasoning_key": ("a2V5", "a2V5"),
    "reasoning_key_file": ("/k/key", "/k/key"),
    "reasoning_previous_key": ("a2V5, b2V5", ("a2V5", "b2V5")),
    "reasoning_ttl": ("7d", 604800.0),
    "require_sealed_reasoning": ("on", True),
    "shared_prefix_cache": ("yes", True),
    "background_max_per_key": ("2", 2),
    "background_max_total": ("0", 0),
    "background_lease": ("2m", 120.0),
    # hosted tools (issue 18, part B)
    "mcp_allow": ("http://mcp:1/a, https://t.example", ("http://mcp:1/a", "https://t.example")),
    "mcp_timeout_seconds": ("5", 5.0),
    "max_tool_rounds": ("3", 3),
    "stream_interval": ("8", 8),
    "stream_interval_ms": ("20", 20.0),
    "max_stream_interval_ms": ("250", 250.0),
    "merge_ready_outputs": ("off", False),
    "merge_when_behind": ("off", False),
    "warm_tools": (str(_WARM_TOOLS), str(_WARM_TOOLS)),
    "conversation_max_bytes": ("1048576", 1048576),
    "conversation_max_item_bytes": ("65536", 65536),
    "conversation_max_per_key": ("50", 50),
    "model": ("/models/m", "/models/m"),
    "served_model_name": ("m", "m"),
    "cache": ("/c", "/c"),
    "max_model_len": ("4096", 4096),
    "dtype": ("float32", "float32"),
    "tensor_parallel_size": ("2", 2),
    "gpu_memory_utilization": ("0.5", 0.5),
    "cpu_kvcache_space_gib": ("0", 0),
    "enforce_eager": ("yes", True),
    "pipeline_parallel_size": ("2", 2),
    "data_parallel_size": ("2", 2),
    "max_num_seqs": ("12", 12),
    "max_num_batched_tokens": ("4096", 4096),
    "enable_prefix_caching": ("False", False),
    "kv_cache_dtype": ("fp8", "fp8"),
    "engine_arg": ("block_size=32,max_logprobs=5", ("block_size=32", "max_logprobs=5")),
    "backend_url": ("http://a:1,http://b:2", ("http://a:1", "http://b:2")),
    "health_check_interval": ("0.5", 0.5),
    "eject_after": ("4", 4),
    "prefix_affinity": ("0", False),
    "affinity_block_tokens": ("32", 32),
    "affinity_load_factor": ("2", 2.0),
    "backend_api_key": ("sk-replicas", "sk-replicas"),
    # gpt-oss's built-in tools (proxy/server/hosted_flags.py)
    "enable_code_interpreter": ("1", True),
    "code_interpreter_timeout": ("2m", 120.0),
    "code_interpreter_memory_mib": ("1024", 1024),
    "code_interpreter_cpu_seconds": ("60", 60),
    "code_interpreter_processes": ("4", 4),
    "code_interpreter_scratch_mib": ("16", 16),
    "code_interpreter_max_output_bytes": ("4096", 4096),
    "code_interpreter_idle": ("5m", 300.0),
    "code_interpreter_containers_per_key": ("2", 2),
    "code_interpreter_containers": ("8", 8),
    "web_search_backend": ("mcp:http://search:9/mcp", "mcp:http://search:9/mcp"),
}


def _refused(argv: list[str], environ: dict[str, str], capsys: pytest.CaptureFixture[str]) -> str:
    """The error message of a start-up refused with exit code 2."""
    with pytest.raises(SystemExit) as exited:
        parse_settings(argv, environ=environ)
    assert exited.value.code == 2
    return capsys.readouterr().err


def test_every_flag_has_its_variable_and_the_variable_sets_it():
    names = [name for name, _ in flags()]
    assert sorted(names) == sorted(SAMPLES), "add the new flag to SAMPLES"
    defaults = Settings()
    for name in names:
        text, expected = SAMPLES[name]
        assert getattr(defaults, name) != expected, name
        settings = parse_settings(["serve"], environ={Flag.variable(name): text})
        assert getattr(settings, name) == expected, name


def test_help_names_every_flag_and_its_variable(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    collapsed = " ".join(capsys.readouterr().out.split())
    for name, _ in flags():
        assert Flag.option(name) in collapsed and Flag.variable(name) in collapsed, name


def test_the_defaults_are_the_same_with_or_without_the_cli():
    parsed = parse_settings(["serve"], environ={"HOME": "/home/x"})
    built = Settings()
    for name, _ in flags():
        if name not in ("date", "cache"):  # pinned and resolved when parsing
            assert getattr(parsed, name) == getattr(built, name), name
    assert parsed.cache == "/home/x/.cache/harmony-proxy"


@pytest.mark.parametrize("text", ["1", "true", "YES", "On", " on "])
def test_true_is_spelled_one_way_everywhere(text):
    environ = {
        "HARMONY_PROXY_ENFORCE_AUTO_TOOL_CALLS": text,
        "HARMONY_PROXY_PREFIX_AFFINITY": text,
        "HARMONY_PROXY_ENFORCE_EAGER": text,
        "HARMONY_PROXY_ENABLE_PREFIX_CACHING": text,
    }
    settings = parse_settings(["serve"], environ=environ)
    assert settings.enforce_auto_tool_calls and settings.prefix_affinity
    assert settings.enforce_eager is True and settings.enable_prefix_caching is True


@pytest.mark.parametrize("text", ["0", "false", "NO", "Off"])
def test_false_is_spelled_one_way_everywhere(text):
    environ = {
        "HARMONY_PROXY_ENFORCE_AUTO_TOOL_CALLS": text,
        "HARMONY_PROXY_PREFIX_AFFINITY": text,
        "HARMONY_PROXY_ENFORCE_EAGER": text,
        "HARMONY_PROXY_ENABLE_PREFIX_CACHING": text,
    }
    settings = parse_settings(["serve"], environ=environ)
    assert not settings.enforce_auto_tool_calls and not settings.prefix_affinity
    assert settings.enforce_eager is False and settings.enable_prefix_caching is False


@pytest.mark.parametrize("text", ["enabled", "2", "y", "nope"])
def test_another_boolean_spelling_is_a_start_up_error_naming_the_variable(text, capsys):
    error = _refused(["serve"], {"HARMONY_PROXY_PREFIX_AFFINITY": text}, capsys)
    assert "HARMONY_PROXY_PREFIX_AFFINITY" in error and "true" in error


@pytest.mark.parametrize(
    ("variable", "text"),
    [
        ("HARMONY_PROXY_PORT", "eighty"),
        ("HARMONY_PROXY_QUEUE_TIMEOUT", "soon"),
        ("HARMONY_PROXY_DATE", "yesterday"),
        ("HARMONY_PROXY_REASONING_EFFORT", "extreme"),
        ("HARMONY_PROXY_LOG_LEVEL", "loud"),
        ("HARMONY_PROXY_WORKERS", "0"),
        ("HARMONY_PROXY_MAX_CONNECTIONS", "0"),
        ("HARMONY_PROXY_SEND_TIMEOUT", "-1"),
        ("HARMONY_PROXY_REASONING_TTL", "soon"),
        ("HARMONY_PROXY_REASONING_TTL", "0"),
    ],
)
def test_a_bad_value_is_a_start_up_error_naming_the_variable(variable, text, capsys):
    assert variable in _refused(["serve"], {variable: text}, capsys)


def test_an_empty_variable_counts_as_unset():
    environ = {
        "HARMONY_PROXY_PORT": "",
        "HARMONY_PROXY_HOST": " ",
        "HARMONY_PROXY_DATE": "",
        "HARMONY_PROXY_PREFIX_AFFINITY": "",
        "HARMONY_PROXY_BACKEND_URL": "",
    }
    settings = parse_settings(["serve"], environ=environ)
    assert (settings.port, settings.host, settings.prefix_affinity) == (8000, "127.0.0.1", True)
    assert settings.backend_url == ()


def test_the_command_line_wins_and_lists_add_to_the_variable():
    environ = {"HARMONY_PROXY_PORT": "9001", "HARMONY_PROXY_CORS_ORIGIN": "https://a.example"}
    settings = parse_settings(
        ["serve", "--port", "9002", "--cors-origin", "https://b.example"], environ=environ
    )
    assert settings.port == 9002
    assert settings.cors_origin == ("https://a.example", "https://b.example")
    off = parse_settings(["serve", "--no-prefix-affinity"], {"HARMONY_PROXY_PREFIX_AFFINITY": "on"})
    assert off.prefix_affinity is False


@pytest.mark.parametrize("key", ["", " ", "\t"])
def test_an_empty_api_key_flag_is_a_start_up_error(key, capsys):
    error = _refused(["serve", "--api-key", "k", "--api-key", key], {}, capsys)
    assert "--api-key" in error and "empty" in error


@pytest.mark.parametrize("text", ["", "  ", "a,,b", "a,", ",a", "a, ,b"])
def test_an_empty_api_key_variable_or_entry_is_a_start_up_error(text, capsys):
    error = _refused(["serve"], {"HARMONY_PROXY_API_KEY": text}, capsys)
    assert "HARMONY_PROXY_API_KEY" in error and "no authentication" in error


def test_settings_built_directly_are_checked_too():
    with pytest.raises(SettingsError, match="empty"):
        Settings(api_key=("",))
    with pytest.raises(SettingsError, match="KEY=VALUE"):
        Settings(engine_arg=("no-equals-sign",))
    with pytest.raises(SettingsError, match="--max-connections"):
        Settings().replace(max_connections=0)


def test_settings_are_frozen_and_pickle():
    """Workers and the engine process are spawned: they get the settings pickled."""
    settings = parse_settings(["serve", "--api-key", "k", "--engine-arg", "block_size=32"], {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(settings)) == settings
    assert settings.replace(workers=1).workers == 1 and settings.workers == 1


def test_only_the_given_environment_is_read(monkeypatch):
    """The process environment does not leak into settings built from another one."""
    monkeypatch.setenv("HARMONY_PROXY_PORT", "1234")
    monkeypatch.setenv("XDG_DATA_HOME", "/wrong")
    monkeypatch.setenv("HARMONY_PROXY_CACHE", "/wrong")
    settings = parse_settings(["serve"], environ={"XDG_DATA_HOME": "/data", "HOME": "/home/x"})
    assert settings.port == 8000
    assert settings.data_dir == "/data/harmony-proxy"
    assert settings.cache == "/home/x/.cache/harmony-proxy"
    config = settings.proxy_config("m")
    assert config.response_store == "/data/harmony-proxy/responses.sqlite3"


def test_without_xdg_data_home_the_data_lives_under_home():
    settings = parse_settings(["serve"], environ={"HOME": "/home/x"})
    assert settings.data_dir == "/home/x/.local/share/harmony-proxy"


def test_a_shared_store_keeps_its_key_in_the_data_directory():
    environ = {"XDG_DATA_HOME": "/data", "HARMONY_PROXY_RESPONSE_STORE": "postgresql://u@h/db"}
    config = parse_settings(["serve"], environ=environ).proxy_config(None)
    assert config.response_store == "postgresql://u@h/db"
    assert config.reasoning_key_file == "/data/harmony-proxy/reasoning.key"
    sqlite = parse_settings(["serve", "--response-store", "/s/r.sqlite3"], environ=environ)
    assert sqlite.proxy_config(None).reasoning_key_file is None  # the app puts it beside


def test_zero_turns_a_limit_off():
    argv = ["serve", "--max-concurrent-requests", "0", "--body-deadline", "0"]
    argv += ["--send-timeout", "0", "--default-max-tokens", "0", "--max-body-bytes", "0"]
    config = parse_settings(argv, environ={}).proxy_config(None)
    assert config.max_concurrent_requests is None and config.body_deadline_seconds is None
    assert config.send_timeout_seconds is None and config.default_max_tokens is None
    assert config.max_body_bytes is None


def test_settings_built_directly_keep_responses_in_a_scratch_directory():
    """No data directory (tests, embedded use): the app's temporary store, as before."""
    assert Settings().proxy_config(None).response_store is None


def test_a_bad_variable_stops_the_real_command_with_exit_code_2():
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HARMONY_PROXY_PORT": "x"},
    )
    assert result.returncode == 2
    assert "HARMONY_PROXY_PORT='x'" in result.stderr


def test_a_malformed_mcp_allow_prefix_is_a_start_up_error(capsys: pytest.CaptureFixture[str]):
    message = _refused(["serve", "--mcp-allow", "not-a-url"], {}, capsys)
    assert "--mcp-allow" in message
