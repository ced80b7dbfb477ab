"""Waiting for a server that is starting: poll one URL until it answers 200.

`serve --workers N` waits for its engine process this way (proxy/server/engine_process.py), and so do
the tests and benchmarks that start servers in processes of their own. A process that exits
while it is awaited ends the wait at once (its log says why), instead of after the timeout.
"""

from __future__ import annotations

import subprocess
import time

import httpx


class ExitedWhileStarting(RuntimeError):
    """The awaited process exited before its URL answered."""

    def __init__(self, returncode: int | None) -> None:
        super().__init__(f"the process exited with code {returncode} while starting")
        self.returncode = returncode


def wait_until_ok(
    url: str,
    *,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    interval: float = 0.5,
) -> None:
    """Return once GET `url` answers 200.

    Raises ExitedWhileStarting if `process` exits first, TimeoutError after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise ExitedWhileStarting(process.returncode)
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{url} did not answer 200 within {timeout:g} s")
        time.sleep(interval)
