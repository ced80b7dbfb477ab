"""`--enable-code-interpreter` fails closed: a start where the sandbox cannot be isolated is
refused with a message saying why, never a server that runs code unconfined."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def serve(tmp_path: Path, *flags: str, path: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": path,
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    if "TIKTOKEN_ENCODINGS_BASE" in os.environ:
        env["TIKTOKEN_ENCODINGS_BASE"] = os.environ["TIKTOKEN_ENCODINGS_BASE"]
    return subprocess.run(
        [sys.executable, "-m", "proxy", "serve", *flags],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_start_is_refused_when_the_sandbox_tools_are_missing(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    done = serve(tmp_path, "--enable-code-interpreter", path=str(empty))
    assert done.returncode == 2
    assert "--enable-code-interpreter: unshare, setpriv, sh not found" in done.stderr
    assert "README: Hosted tools" in done.stderr
