"""The `serve` flags of hosted tools (/v1/responses tools the proxy runs itself: proxy/hosted/)."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

from proxy.hosted.mcp_entry import check_prefix
from proxy.hosted.sandbox import IsolationUnavailable, SandboxSettings, check_isolation
from proxy.hosted.sandbox_process import ProcessLimits
from proxy.server.flags import GROUP_RESPONSES, SettingsError, duration_seconds, flag


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

    # -- gpt-oss's built-in tools: `code_interpreter` (python) and `web_search` (browser)
    enable_code_interpreter: bool = flag(
        False,
        "run `code_interpreter` tools as gpt-oss's python tool, in a sandbox (user, mount, pid "
        "and network namespaces through util-linux unshare; the start is refused if they "
        "cannot be set up; default: off, the tool is left out of the prompt)",
        group=GROUP_RESPONSES,
        kind="switch",
    )
    code_interpreter_timeout: float = flag(
        30.0,
        "wall-clock limit of one python call; past it the sandbox is killed, its state lost "
        "(default: 30s)",
        group=GROUP_RESPONSES,
        convert=duration_seconds,
        minimum=1,
    )
    code_interpreter_memory_mib: int = flag(
        512,
        "address-space limit of each sandboxed process, MiB (default: 512)",
        group=GROUP_RESPONSES,
        convert=int,
        minimum=64,
    )
    code_interpreter_cpu_seconds: int = flag(
        300,
        "CPU seconds a sandbox may use over its life (default: 300)",
        group=GROUP_RESPONSES,
        convert=int,
        minimum=1,
    )
    code_interpreter_processes: int = flag(
        16,
        "processes and threads a sandbox may run at once (default: 16)",
        group=GROUP_RESPONSES,
        convert=int,
        minimum=1,
    )
    code_interpreter_scratch_mib: int = flag(
        64,
        "size of a sandbox's scratch directory /mnt/data (a tmpfs; its largest file too), MiB "
        "(default: 64)",
        group=GROUP_RESPONSES,
        convert=int,
        minimum=1,
    )
    code_interpreter_max_output_bytes: int = flag(
        16384,
        "output of one python call the model reads back; the rest is cut, saying so "
        "(default: 16384)",
        group=GROUP_RESPONSES,
        convert=int,
        minimum=256,
    )
    code_interpreter_idle: float = flag(
        1200.0,
        "a container unused this long is removed with its state (default: 20m)",
        group=GROUP_RESPONSES,
        convert=duration_seconds,
        minimum=1,
    )
    code_interpreter_containers_per_key: int = flag(
        4,
        "live containers per API key owner; a new one retires the owner's least recently "
        "used (default: 4)",
        group=GROUP_RESPONSES,
        convert=int,
        minimum=1,
    )
    code_interpreter_containers: int = flag(
        32,
        "live containers in all (per worker process; default: 32)",
        group=GROUP_RESPONSES,
        convert=int,
        minimum=1,
    )
    web_search_backend: str | None = flag(
        None,
        "run `web_search` tools as gpt-oss's browser tool over this search backend: an HTTP "
        'endpoint (GET URL?q=&n= -> {"results": [{title, url, text, snippet}]}) or mcp:URL '
        "(an MCP server's `search` tool); default: none, the tool is left out of the prompt",
        group=GROUP_RESPONSES,
        metavar="URL",
        refuse_empty=True,
    )

    def sandbox_settings(self) -> SandboxSettings | None:
        """The code interpreter's settings; None when it is not enabled."""
        if not self.enable_code_interpreter:
            return None
        return SandboxSettings(
            process=ProcessLimits(
                memory_bytes=self.code_interpreter_memory_mib << 20,
                cpu_seconds=self.code_interpreter_cpu_seconds,
                processes=self.code_interpreter_processes,
                file_bytes=self.code_interpreter_scratch_mib << 20,
                scratch_bytes=self.code_interpreter_scratch_mib << 20,
            ),
            timeout_seconds=self.code_interpreter_timeout,
            max_output_bytes=self.code_interpreter_max_output_bytes,
            idle_seconds=self.code_interpreter_idle,
            max_per_owner=self.code_interpreter_containers_per_key,
            max_total=self.code_interpreter_containers,
        )

    def check_hosted(self) -> None:
        """A malformed `--mcp-allow` prefix is a start-up error (it would match nothing)."""
        for prefix in self.mcp_allow:
            try:
                check_prefix(prefix)
            except ValueError as exc:
                raise SettingsError(f"--mcp-allow / HARMONY_PROXY_MCP_ALLOW: {exc}") from None


def check_code_interpreter(flags: HostedFlags, prog: str) -> None:
    """With --enable-code-interpreter, prove the sandbox's isolation before serving; a start
    where it cannot be set up is refused (exit 2), never a server running code unconfined."""
    settings = flags.sandbox_settings()
    if settings is None:
        return
    try:
        asyncio.run(check_isolation(settings))
    except IsolationUnavailable as exc:
        print(
            f"{prog} serve: error: --enable-code-interpreter: {exc}. The sandbox needs "
            "util-linux (unshare, setpriv) and unprivileged user namespaces (README: Hosted "
            "tools).",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(2) from None
