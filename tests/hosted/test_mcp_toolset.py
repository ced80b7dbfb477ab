"""The MCP toolset and its entry checks, against the real test MCP server: the allowlist's
matching, listings (cached, filtered, taken from the conversation), and calls whose failures
are results."""

from __future__ import annotations

import asyncio

import pytest

from proxy.core.errors import InvalidRequest
from proxy.hosted.base import HostedCall, HostedContext
from proxy.hosted.mcp_entry import redacted_tools, url_allowed
from proxy.hosted.mcp_tools import LISTINGS, McpToolset, open_mcp
from proxy.server.settings import ProxyConfig

ALLOW = ("http://127.0.0.1:8080/mcp", "https://tools.example.com")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/mcp",
        "http://127.0.0.1:8080/mcp/",
        "http://127.0.0.1:8080/mcp/sse",
        "https://tools.example.com/anything",
        "https://tools.example.com:443/x",
    ],
)
def test_urls_under_a_prefix_are_allowed(url):
    assert url_allowed(url, ALLOW)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/mcpx",  # not at a segment boundary
        "http://127.0.0.1:8081/mcp",
        "http://127.0.0.1/mcp",
        "https://127.0.0.1:8080/mcp",
        "https://tools.example.com.evil.net/",
        "https://tools.example.com@evil.net/",
        "https://user:pw@tools.example.com/",
        "http://127.0.0.1:8080/mcp/../admin",
        "http://127.0.0.1:8080/mcp/%2e%2e/admin",
        "http://127.0.0.1:8080/mcp#frag",
        "http://127.0.0.1:notaport/mcp",
        "ftp://tools.example.com/",
        "",
    ],
)
def test_urls_elsewhere_are_not(url):
    assert not url_allowed(url, ALLOW)


def test_no_prefix_allows_nothing():
    assert not url_allowed("http://127.0.0.1:8080/mcp", ())


def test_redaction_drops_headers_and_tokens_of_mcp_entries_only():
    tools = [
        {
            "type": "mcp",
            "server_label": "a",
            "headers": {"Authorization": "x"},
            "authorization": "t",
        },
        {"type": "function", "name": "f", "headers": "kept: not an mcp tool"},
    ]
    assert redacted_tools(tools) == [
        {"type": "mcp", "server_label": "a"},
        {"type": "function", "name": "f", "headers": "kept: not an mcp tool"},
    ]


def _open(mcp_server, history=(), **entry: object) -> McpToolset:
    config = ProxyConfig(mcp_allow=(mcp_server.origin,), mcp_timeout_seconds=3.0)
    tool = {
        "type": "mcp",
        "server_label": "calc",
        "server_url": mcp_server.url,
        "require_approval": "never",
        **entry,
    }
    return asyncio.run(open_mcp(tool, "tools[0]", HostedContext(config, "owner", history)))


def test_allowed_tools_filter_what_is_declared(mcp_server):
    toolset = _open(mcp_server, allowed_tools=["add"])
    assert [tool.key for tool in toolset.tools()] == ["calc.add"]
    assert [t["name"] for t in toolset.leading_items()[0]["tools"]] == ["add"]
    assert not toolset.owns("calc.lookup")


def test_a_listing_is_cached_and_a_conversation_listing_is_reused(mcp_server):
    LISTINGS._entries.clear()
    first = _open(mcp_server)
    assert len(LISTINGS._entries) == 1
    listing = first.leading_items()[0]
    again = _open(mcp_server, history=[listing])
    assert again.leading_items() == []  # listed already in this conversation
    assert [t.key for t in again.tools()] == [t.key for t in first.tools()]


def test_calls_return_results_and_failures_never_raise(mcp_server):
    toolset = _open(mcp_server)
    run = lambda key, arguments: asyncio.run(toolset.run(HostedCall("c", key, arguments)))  # noqa: E731
    assert run("calc.add", '{"a": 40, "b": 2}').output == "42"
    bad = run("calc.add", "[1, 2]")
    assert bad.error and bad.item_fields["error"]["type"] == "mcp_protocol_error"
    assert bad.output.startswith("Error:")
    wrong = run("calc.add", '{"a": "x", "b": 2}')  # the server's own validation
    assert wrong.error and wrong.item_fields["error"]["type"] == "mcp_tool_execution_error"


def test_a_connector_id_without_url_is_refused(mcp_server):
    with pytest.raises(InvalidRequest) as caught:
        _open(mcp_server, server_url=None, connector_id="connector_gmail")
    assert caught.value.param == "tools[0].server_url"


def test_a_redirect_out_of_the_allowed_prefix_is_refused_before_it_is_followed(mcp_server):
    """`/hop/mcp` redirects to `/mcp` on the same origin: under an allowlist of `/hop` only,
    the session's second request is refused (403) rather than sent; allowing the whole origin,
    the same URL lists the tools through the redirect."""
    from proxy.hosted.mcp_client import McpFailure, list_tools
    from proxy.hosted.mcp_entry import McpServerAddress

    hop = f"{mcp_server.origin}/hop/mcp"
    narrow = asyncio.run(list_tools(McpServerAddress(hop, allow=(f"{mcp_server.origin}/hop",)), 10))
    assert isinstance(narrow, McpFailure)
    assert narrow.error["type"] == "http_error" and narrow.error["code"] == 403
    assert "outside the allowed URL prefix" in narrow.message
    wide = asyncio.run(list_tools(McpServerAddress(hop, allow=(mcp_server.origin,)), 10))
    assert not isinstance(wide, McpFailure)
    assert "add" in {tool.name for tool in wide}
