"""`harmony-proxy serve`: flags, environment variables, --help."""

from __future__ import annotations

import subprocess
import sys

from proxy.cli import build_parser, proxy_config


def test_help_lists_the_serve_flags():
    result = subprocess.run([sys.executable, "-m", "proxy", "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for flag in ("--model", "--host", "--port", "--api-key", "--date", "--cors-origin", "--max-model-len", "--cpu-kvcache-space-gib"):
        assert flag in result.stdout
    assert "HARMONY_PROXY_" in result.stdout


def test_console_script_is_installed():
    result = subprocess.run(["harmony-proxy", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "serve" in result.stdout


def test_flags_become_the_proxy_config():
    args = build_parser().parse_args(
        ["serve", "--api-key", "k1", "--api-key", "k2", "--date", "2026-02-03", "--cors-origin", "https://a.example", "--reasoning-effort", "low"]
    )
    config = proxy_config(args, "demo")
    assert config.api_keys == ("k1", "k2")
    assert config.conversation_date == "2026-02-03"
    assert config.cors_origins == ("https://a.example",)
    assert config.default_reasoning_effort == "low"
    assert config.served_model_names == ("demo",)


def test_environment_variables_set_the_defaults(monkeypatch):
    monkeypatch.setenv("HARMONY_PROXY_PORT", "9123")
    monkeypatch.setenv("HARMONY_PROXY_HOST", "0.0.0.0")
    monkeypatch.setenv("HARMONY_PROXY_API_KEY", "a,b")
    monkeypatch.setenv("HARMONY_PROXY_DATE", "2025-12-31")
    monkeypatch.setenv("HARMONY_PROXY_MODEL", "/models/gpt-oss-20b")
    monkeypatch.setenv("HARMONY_PROXY_MAX_MODEL_LEN", "4096")
    args = build_parser().parse_args(["serve"])
    assert (args.port, args.host, args.model, args.max_model_len) == (9123, "0.0.0.0", "/models/gpt-oss-20b", 4096)
    config = proxy_config(args, "x")
    assert config.api_keys == ("a", "b") and config.conversation_date == "2025-12-31"


def test_without_a_date_the_date_is_pinned_to_today():
    from proxy.config import today

    config = proxy_config(build_parser().parse_args(["serve"]), "x")
    assert config.conversation_date == today()
