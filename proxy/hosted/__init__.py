"""Hosted tools: tools the proxy runs itself inside one /v1/responses response.

The Responses layer (proxy/api/responses/turn.py) drives the loop: a run ends with calls, those a
hosted toolset owns are run here instead of being returned to the client, their results are fed
back as Harmony tool messages, and the next run continues the same response. `base.py` is the
contract every hosted tool meets (MCP servers: `mcp_tools.py`; gpt-oss's python and browser
tools: their own modules); `openers.py` maps a request's tool entries to toolsets.
"""

from proxy.hosted.base import (
    HostedCall,
    HostedContext,
    HostedResult,
    HostedTools,
    HostedToolset,
    ItemEvents,
)

__all__ = [
    "HostedCall",
    "HostedContext",
    "HostedResult",
    "HostedTools",
    "HostedToolset",
    "ItemEvents",
]
