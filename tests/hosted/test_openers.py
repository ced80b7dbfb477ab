"""Which requests open hosted tools, and when their clients are imported."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from proxy.hosted import openers


def test_the_hosted_types_are_exactly_those_with_an_opener():
    assert set(openers._openers()) == openers.HOSTED_TYPES


def test_a_request_without_hosted_tools_never_reaches_the_openers(monkeypatch):
    def refuse() -> dict:
        raise AssertionError("the openers (and their imports) were asked for")

    monkeypatch.setattr(openers, "_openers", refuse)
    tools = [{"type": "function", "name": "f"}, {"type": "file_search"}, "junk", None]
    hosted = asyncio.run(openers.open_hosted(tools, context=None))  # type: ignore[arg-type]
    assert not hosted.toolsets
    with pytest.raises(AssertionError):
        asyncio.run(openers.open_hosted([{"type": "mcp"}], context=None))  # type: ignore[arg-type]


def test_warming_up_imports_the_clients_a_first_request_would_import():
    """Run in a fresh interpreter: `mcp` is not imported by the server's modules themselves,
    and `warm_up_hosted` (a thread at startup) imports it, so no request does on the loop."""
    code = (
        "import sys; import proxy.server.app; assert 'mcp' not in sys.modules, 'imported early';"
        "from proxy.hosted.openers import warm_up_hosted; warm_up_hosted();"
        "assert 'mcp' in sys.modules and 'proxy.hosted.mcp_client' in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
