"""`python -m tests.hosted.mcp_search_server --port N`: an MCP server with a `search` tool.

The `mcp` package's own server over streamable HTTP at `http://127.0.0.1:N/mcp`, in its own
process, searching the same corpus as tests/hosted/search_endpoint.py: the browser's
`mcp:URL` backend against a real MCP server.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer

from tests.hosted.search_endpoint import CORPUS

server = MCPServer("test-search")


@server.tool()
def search(query: str, n: int = 10) -> dict[str, Any]:
    """Pages of the corpus that contain a word of `query`."""
    words = query.lower().split()
    hits = [r for r in CORPUS if any(w in r["text"].lower() for w in words)]
    return {"results": hits[:n]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
