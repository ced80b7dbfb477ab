"""Running the pinned Claude Code (`claude -p`) against a server, non-interactively.

The binary is the native one that the npm package's postinstall copies from its platform
package (`make install-dev`); `claude_missing()` says why the tests cannot run without it.
Claude Code runs in a scratch directory with a scratch HOME and a minimal environment, its
non-essential traffic (telemetry, update checks, the `HEAD /api/hello` probe) off, every model
alias pointed at the served model, and no tool allowed without permission (a `-p` run denies
what it would have to ask for), so the demo model's tool calls cannot touch anything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLAUDE_DIR = Path(__file__).parent
CLAUDE_BIN = CLAUDE_DIR / "node_modules" / ".bin" / "claude"
API_KEY = "sk-ant-test-key"


@dataclass
class ClaudeRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def result(self) -> dict[str, Any]:
        """`--output-format json`'s one object (type "result", is_error, api_error_status...)."""
        return json.loads(self.stdout.strip().splitlines()[-1])


def claude_missing() -> str | None:
    """Why Claude Code cannot run here (None: it can)."""
    if not CLAUDE_BIN.exists():
        if shutil.which("npm") is None:
            return "npm not found: Claude Code is not installed (make install-dev installs it)"
        return f"Claude Code is not installed in {CLAUDE_DIR} (run make install-dev)"
    try:
        subprocess.run([str(CLAUDE_BIN), "--version"], capture_output=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"the Claude Code binary does not run here ({exc}); reinstall with make install-dev"
    return None


def run_claude(
    base_url: str,
    model: str,
    prompt: str,
    *,
    timeout: float = 300,
    max_output_tokens: int = 512,
    slim: bool = False,
) -> ClaudeRun:
    """One `claude -p` turn against `base_url` (the server's root, without /v1).

    `slim`: no tools and a one-line system prompt, so the request fits the test engine's
    2,048-token context (Claude Code's own is about 12,000 tokens)."""
    model_vars = (
        "ANTHROPIC_MODEL",
        "ANTHROPIC_SMALL_FAST_MODEL",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL",
        "ANTHROPIC_DEFAULT_SONNET_MODEL",
        "ANTHROPIC_DEFAULT_OPUS_MODEL",
        "CLAUDE_CODE_SUBAGENT_MODEL",
    )
    with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as cwd:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "TERM": "dumb",
            "LANG": "C.UTF-8",
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": API_KEY,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
            "CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(max_output_tokens),
            **dict.fromkeys(model_vars, model),
        }
        args = [str(CLAUDE_BIN), "-p", prompt, "--output-format", "json", "--max-turns", "2"]
        if slim:
            args += ["--tools", "", "--system-prompt", "You are a helpful assistant."]
        done = subprocess.run(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    return ClaudeRun(done.returncode, done.stdout, done.stderr)
