"""The `replay` marker: the Dockerfile build replays (minutes; `-m "not replay"` skips them)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "replay: replays an image's build (a fresh pip install, about a minute or more)"
    )
