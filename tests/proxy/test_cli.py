"""`harmony-proxy serve`: flags, environment variables, --help."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import openai
import pytest

from proxy.server.cli import parse_settings
from proxy.server.probe import ExitedWhileStarting, wait_until_ok


def test_help_lists_the_serve_flags():
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for flag in (
        "--model",
        "--host",
        "--port",
        "--api-key",
        "--date",
        "--cors-origin",
        "--max-model-len",
        "--cpu-kvcache-space-gib",
    ):
        assert flag in result.stdout
    assert "HARMONY_PROXY_" in result.stdout


def test_console_script_is_installed():
    result = subprocess.run(["harmony-proxy", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "serve" in result.stdout


def test_flags_become_the_proxy_config():
    settings = parse_settings(
        [
            "serve",
            "--api-key",
            "k1",
            "--api-key",
            "k2",
            "--date",
            "2026-02-03",
            "--cors-origin",
            "https://a.example",
            "--reasoning-effort",
            "low",
            "--body-deadline",
            "5",
        ],
        environ={},
    )
    config = settings.proxy_config("demo")
    assert config.api_keys == ("k1", "k2")
    assert config.conversation_date == "2026-02-03"
    assert config.cors_origins == ("https://a.example",)
    assert config.default_reasoning_effort == "low"
    assert config.served_model_names == ("demo",)
    assert config.body_deadline_seconds == 5.0


def test_environment_variables_set_the_defaults():
    environ = {
        "HARMONY_PROXY_PORT": "9123",
        "HARMONY_PROXY_HOST": "0.0.0.0",
        "HARMONY_PROXY_API_KEY": "a,b",
        "HARMONY_PROXY_DATE": "2025-12-31",
        "HARMONY_PROXY_MODEL": "/models/gpt-oss-20b",
        "HARMONY_PROXY_MAX_MODEL_LEN": "4096",
    }
    settings = parse_settings(["serve"], environ=environ)
    assert (settings.port, settings.host, settings.model, settings.max_model_len) == (
        9123,
        "0.0.0.0",
        "/models/gpt-oss-20b",
        4096,
    )
    config = settings.proxy_config("x")
    assert config.api_keys == ("a", "b") and config.conversation_date == "2025-12-31"


def test_the_process_environment_is_read_when_none_is_given(monkeypatch):
    monkeypatch.setenv("HARMONY_PROXY_PORT", "9124")
    assert parse_settings(["serve"]).port == 9124


def test_without_a_date_the_date_is_pinned_to_today():
    from proxy.server.settings import today

    settings = parse_settings(["serve"], environ={})
    assert settings.date == today()
    assert settings.proxy_config("x").conversation_date == today()


# Start-up and shutdown output that `--log-level info` must not show (README: Operating it):
# vLLM's own log lines, torch's C++ and deprecation warnings, the checkpoint progress bar, and
# nanobind's leak report at exit (the start-up heap left frozen; proxy/server/lifecycle.py).
NOISE = (
    "(EngineCore",
    "(MainProcess",
    "[W",
    "FutureWarning",
    "Loading safetensors",
    "leaked",
    "Traceback",
)


@pytest.mark.engine
def test_serve_starts_the_demo_model_answers_and_stops_quietly(demo_model_path, tmp_path):
    """The README's first command: `harmony-proxy serve` with no --model serves the demo model;
    its start and its stop print our progress lines and uvicorn's, not the engine's noise."""
    port = _free_port()
    env = {
        **os.environ,
        "HARMONY_PROXY_CACHE": str(demo_model_path.parent),
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("VLLM_LOGGING_LEVEL", None)
    log = (tmp_path / "serve.log").open("a+")
    process = subprocess.Popen(
        [
            "harmony-proxy",
            "serve",
            "--port",
            str(port),
            "--max-model-len",
            "2048",
            "--date",
            "2026-01-15",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        try:
            wait_until_ok(f"http://127.0.0.1:{port}/ready", timeout=600, process=process)
        except (ExitedWhileStarting, TimeoutError) as exc:
            raise AssertionError(f"{exc}\n{_read(log)}") from None
        output = _read(log)
        for step in ("Harmony vocabulary", "demo model", "engine", f"http://127.0.0.1:{port}/v1"):
            assert step in output, output
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        (model,) = [m.id for m in client.models.list()]
        completion = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Hello!"}], max_completion_tokens=32
        )
        assert completion.choices[0].finish_reason in ("stop", "length")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0, _read(log)
        output = _read(log)
        assert "Stopped (exit code 0)" in output, output
        noisy = [line for line in output.splitlines() if any(n in line for n in NOISE)]
        assert not noisy, output
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _read(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()
