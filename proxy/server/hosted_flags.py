"""The `serve` flags of hosted tools (/v1/responses tools the proxy runs itself: proxy/hosted/)."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.hosted.mcp_entry import check_prefix
from proxy.server.flags import GROUP_RESPONSES, SettingsError, flag


@dataclass(frozen=True)
class HostedFlags:
    """Hosted tools' flags (a part of `ServingFlags`)."""

    # -- MCP and the tool loop (issue 18, part B)
    mcp_allow: tuple[str, ...] = flag(
        (),
        "allow `mcp` tools whose server_url starts with this URL prefix (same scheme, host and "
        "port; repeatable); without any, `mcp` tools are refused with a 400 (default: none)",
        group=GROUP_RESPONSES,
        kind="list",
        metavar="URL",
    )
    mcp_timeout_seconds: float = flag(
        30.0,
        "longest an MCP server may take to list its tools or answer one call; past it the call "
        "fails (its item says so) and the response goes on (default: 30)",
        group=GROUP_RESPONSES,
        convert=float,
        minimum=0.1,
    )
    max_tool_rounds: int = flag(
        8,
        "rounds of hosted tool calls one response may run before it ends `incomplete` (default: 8)",
        group=GROUP_RESPONSES,
        convert=int,
        minimum=1,
    )

    def check_hosted(self) -> None:
        """A malformed `--mcp-allow` prefix is a start-up error (it would match nothing)."""
        for prefix in self.mcp_allow:
            try:
                check_prefix(prefix)
            except ValueError as exc:
                raise SettingsError(f"--mcp-allow / HARMONY_PROXY_MCP_ALLOW: {exc}") from None
