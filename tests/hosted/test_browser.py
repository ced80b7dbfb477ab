"""The browser tool over a real HTTP search endpoint: the reference simple browser's display,
cursors, links, `find`, and the rule that only pages the backend returned can be opened."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proxy.hosted.base import HostedCall
from proxy.hosted.browser import BrowserToolset
from proxy.hosted.search_backends import search_backend
from tests.hosted.search_endpoint import search_endpoint
from tests.support.mcp_fixtures import free_port


@pytest.fixture
def endpoint():
    with search_endpoint() as running:
        yield running


def call(name: str, **arguments: object) -> HostedCall:
    return HostedCall("call_1", f"browser.{name}", json.dumps(arguments))


async def test_the_tools_are_the_trained_browser_namespace_declared_as_builtins(endpoint):
    tools = BrowserToolset(search_backend(endpoint[0]), "tools[0]").tools()
    assert [t.key for t in tools] == ["browser.search", "browser.open", "browser.find"]
    assert all(t.builtin == "browser" and t.schema_json for t in tools)


async def test_search_lists_results_as_a_page_of_links_with_numbered_lines(endpoint):
    browser = BrowserToolset(search_backend(endpoint[0]), "tools[0]")
    result = await browser.run(call("search", query="harmony channels"))
    assert result.error is None
    lines = result.output.splitlines()
    assert lines[0] == "[0] Search results for `harmony channels`"
    assert lines[1].startswith("**viewing lines [0 - ")
    assert lines[3] == "L0: # 【0†Harmony response format†docs.example.org】"
    assert result.item_fields["action"] == {
        "type": "search",
        "query": "harmony channels",
        "sources": [{"type": "url", "url": "https://docs.example.org/harmony"}],
    }


async def test_open_by_link_id_shows_the_result_text_with_a_new_cursor(endpoint):
    browser = BrowserToolset(search_backend(endpoint[0]), "tools[0]")
    await browser.run(call("search", query="declared"))
    opened = await browser.run(call("open", id=0, cursor=0))
    assert opened.output.startswith("[1] Tool calling (https://docs.example.org/tools)\n")
    assert "L0: Functions are declared in the developer message." in opened.output
    assert opened.item_fields["action"] == {
        "type": "open_page",
        "url": "https://docs.example.org/tools",
    }


async def test_find_lists_matching_lines_and_scrolling_shows_them(endpoint):
    browser = BrowserToolset(search_backend(endpoint[0]), "tools[0]")
    await browser.run(call("search", query="harmony"))
    await browser.run(call("open", id=0))
    found = await browser.run(call("find", pattern="marmalade"))
    assert "# 【0†match at L31】" in found.output
    assert found.item_fields["action"] == {
        "type": "find_in_page",
        "pattern": "marmalade",
        "url": "https://docs.example.org/harmony",
    }
    scrolled = await browser.run(call("open", cursor=1, loc=31, num_lines=1))
    assert scrolled.output.endswith("L31: The secret word of the page is MARMALADE.")


async def test_only_urls_the_backend_returned_can_be_opened(endpoint):
    url, seen = endpoint
    browser = BrowserToolset(search_backend(url), "tools[0]")
    await browser.run(call("search", query="declared"))
    returned = await browser.run(call("open", id="https://docs.example.org/tools"))
    assert returned.error is None and "[1] Tool calling" in returned.output
    refused = await browser.run(call("open", id="http://169.254.169.254/latest/meta-data/"))
    assert refused.error is not None and "only pages the search returned" in refused.output
    assert all(path.startswith("/search?") for path in seen) and len(seen) == 1


async def test_bad_cursors_and_link_ids_are_told_to_the_model(endpoint):
    browser = BrowserToolset(search_backend(endpoint[0]), "tools[0]")
    empty = await browser.run(call("find", pattern="x"))
    assert empty.output == "No pages to access!"
    await browser.run(call("search", query="harmony"))
    assert (await browser.run(call("open", id=7))).output == "Invalid link id `7`."
    far = await browser.run(call("open", cursor=9))
    assert far.output.startswith("Cursor `9` is out of range.")
    listing = await browser.run(call("find", pattern="harmony", cursor=0))
    assert "Cannot run `find` on search results page" in listing.output


async def test_a_backend_that_is_down_is_a_failed_call_not_an_exception():
    browser = BrowserToolset(search_backend("http://127.0.0.1:9/search", timeout=2), "tools[0]")
    result = await browser.run(call("search", query="anything"))
    assert result.error is not None and "unreachable" in result.output


@pytest.fixture(scope="module")
def mcp_search_url():
    """tests/hosted/mcp_search_server.py in its own process; its streamable HTTP URL."""
    port = free_port()
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.hosted.mcp_search_server", "--port", str(port)],
        cwd=root,
        env=dict(os.environ, PYTHONPATH=str(root)),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_an_mcp_backend_searches_through_the_servers_search_tool(mcp_search_url):
    browser = BrowserToolset(search_backend(f"mcp:{mcp_search_url}"), "tools[0]")
    result = await browser.run(call("search", query="declared"))
    assert result.error is None
    assert "L0: # 【0†Tool calling†docs.example.org】" in result.output
    opened = await browser.run(call("open", id=0))
    assert "L1: Built-in tools go in the system." in opened.output


async def test_an_mcp_backend_that_is_down_is_a_failed_call():
    browser = BrowserToolset(search_backend("mcp:http://127.0.0.1:9/mcp", timeout=2), "tools[0]")
    result = await browser.run(call("search", query="anything"))
    assert result.error is not None and "MCP search server failed" in result.output
