"""Run the project-local Codex CLI (`make install-dev` installs it here with npm) hermetically.

Every run gets its own CODEX_HOME (and HOME) holding a config.toml whose only model provider
is the server under test, spoken to with `wire_api = "responses"` and an API key from an
environment variable: no login, no user config, no update check, analytics, feedback or plugin
sync, no retries (a protocol error fails the run at once instead of being retried away).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CODEX_DIR = Path(__file__).resolve().parent
CODEX_BIN = CODEX_DIR / "node_modules" / ".bin" / "codex"
API_KEY_ENV = "HARMONY_PROXY_API_KEY"
API_KEY = "sk-codex-client-test"
SLIM_INSTRUCTIONS = "You are a helpful assistant running in a terminal. Answer briefly.\n"


def codex_missing() -> str | None:
    """Why Codex CLI cannot run here, or None when it can."""
    if CODEX_BIN.exists():
        return None
    how = "run `make install-dev`" if shutil.which("npm") else "npm is not installed"
    return f"Codex CLI is not installed in {CODEX_DIR / 'node_modules'} ({how})"


def render_config(
    base_url: str, model: str, idle_timeout_s: float = 60, instructions: Path | None = None
) -> str:
    """config.toml for one run: Codex's own defaults, or slim ones when `instructions` is set.

    Codex's default first request is ~45 kB (its base instructions, skills, an environment
    context, and ~18 kB of tools, mostly the `multi_agent_v1` namespace): far beyond the 2048
    tokens the test engine gives the demo model. The slim settings replace the base instructions
    with the `instructions` file and leave out every optional part, keeping the function tools
    (`exec_command`, `write_stdin`, `view_image`) and the built-in `web_search` tool: ~4.7 kB.
    """
    slim = instructions is not None
    top = [
        f'model = "{model}"',
        'model_provider = "harmony-proxy"',
        "check_for_update_on_startup = false",
    ]
    features = ["plugins = false"]
    if slim:
        top += [
            f'model_instructions_file = "{instructions}"',
            "include_environment_context = false",
            "include_apps_instructions = false",
            "include_permissions_instructions = false",
            "include_collaboration_mode_instructions = false",
        ]
        features += [
            "goals = false",
            "apps = false",
            "skill_search = false",
            "default_mode_request_user_input = false",
        ]
    tables = {
        "model_providers.harmony-proxy": [
            'name = "harmony-proxy"',
            f'base_url = "{base_url}"',
            f'env_key = "{API_KEY_ENV}"',
            'wire_api = "responses"',
            "request_max_retries = 0",
            "stream_max_retries = 0",
            f"stream_idle_timeout_ms = {int(idle_timeout_s * 1000)}",
        ],
        "features": features,
        "analytics": ["enabled = false"],
        "feedback": ["enabled = false"],
        "otel": ['exporter = "none"'],
    }
    if slim:
        tables["agents"] = ["enabled = false"]
        tables["skills"] = ["include_instructions = false"]
        tables["tools.experimental_request_user_input"] = ["enabled = false"]
    lines = [*top, ""]
    for name, body in tables.items():
        lines += [f"[{name}]", *body, ""]
    return "\n".join(lines)


@dataclass
class CodexRun:
    returncode: int
    stdout: str
    stderr: str
    last_message: str


def run_codex(
    base_url: str,
    model: str,
    root: Path,
    prompt: str = "say hi",
    timeout: float = 60,
    slim: bool = False,
) -> CodexRun:
    """`codex exec` once against `base_url`; its home and working directory live under `root`."""
    home, work = root / "codex-home", root / "work"
    home.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    instructions = None
    if slim:
        instructions = home / "instructions.md"
        instructions.write_text(SLIM_INSTRUCTIONS)
    config = render_config(base_url, model, idle_timeout_s=timeout, instructions=instructions)
    (home / "config.toml").write_text(config)
    last = root / "last-message.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CODEX_"))}
    env.update(
        {
            "HOME": str(home),
            "CODEX_HOME": str(home),
            API_KEY_ENV: API_KEY,
            "NO_COLOR": "1",
            "RUST_LOG": "warn",
        }
    )
    command = [
        str(CODEX_BIN),
        "exec",
        "--strict-config",
        "--skip-git-repo-check",
        "--ephemeral",
        "--sandbox",
        "read-only",
        "--color",
        "never",
        "--cd",
        str(work),
        "--output-last-message",
        str(last),
        prompt,
    ]
    done = subprocess.run(
        command,
        env=env,
        cwd=work,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    message = last.read_text() if last.exists() else ""
    return CodexRun(done.returncode, done.stdout, done.stderr, message)
