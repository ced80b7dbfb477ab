"""A fake Responses API backend that records what a client sends (stdlib only).

`CaptureServer` listens on 127.0.0.1, records every request (method, path, headers, JSON body)
and answers `POST .../responses` with a minimal, valid Responses SSE stream: a `message` item
saying `REPLY_TEXT`, or, for the first request in `tool_call` mode, a `reasoning` item (summary
and `encrypted_content`) then a `function_call` item calling Codex's shell tool with a harmless
`echo hi`. Codex then runs the command and sends a follow-up request replaying the reasoning,
the call and its output, which is recorded too.

By hand, from the repository root: `python -m tests.clients.codex.capture_server [--tool-call]`
prints its base URL and dumps each request as it arrives; `--record` runs the installed Codex
CLI against it and rewrites the fixtures beside this file (captured_request.json, the first
turn's body; captured_followup.json, the request after the tool call; captured_headers.json;
captured_request_catalog_model.json, a first turn for a model in Codex's own catalog).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPLY_TEXT = "hi from the capture server"
SHELL_COMMAND = "echo hi"
REASONING_SUMMARY = "The user wants a greeting; run echo first."
# Opaque to the client, which must replay it verbatim (it cannot read it).
ENCRYPTED_REASONING = "gAAAAA-capture-server-opaque-reasoning-blob"


@dataclass
class CapturedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def _usage() -> dict[str, Any]:
    return {
        "input_tokens": 12,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 17,
    }


def _message_events(index: int) -> list[dict[str, Any]]:
    item_id = f"msg_{index}"
    part = {"type": "output_text", "text": REPLY_TEXT, "annotations": []}
    added = {"type": "message", "id": item_id, "status": "in_progress", "role": "assistant"}
    done = {**added, "status": "completed", "content": [part]}
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    return [
        {"type": "response.output_item.added", "output_index": 0, "item": {**added, "content": []}},
        {"type": "response.content_part.added", **where, "part": {**part, "text": ""}},
        {"type": "response.output_text.delta", **where, "delta": REPLY_TEXT},
        {"type": "response.output_text.done", **where, "text": REPLY_TEXT},
        {"type": "response.content_part.done", **where, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": done},
    ]


def _reasoning_events(index: int) -> list[dict[str, Any]]:
    item_id = f"rs_{index}"
    summary = [{"type": "summary_text", "text": REASONING_SUMMARY}]
    added = {"type": "reasoning", "id": item_id, "summary": []}
    done = {**added, "summary": summary, "encrypted_content": ENCRYPTED_REASONING}
    return [
        {"type": "response.output_item.added", "output_index": 0, "item": added},
        {"type": "response.output_item.done", "output_index": 0, "item": done},
    ]


def _function_call_events(index: int, tool_name: str, output_index: int) -> list[dict[str, Any]]:
    item_id = f"fc_{index}"
    if tool_name == "exec_command":
        arguments = json.dumps({"cmd": SHELL_COMMAND})
    else:
        arguments = json.dumps({"command": ["bash", "-lc", SHELL_COMMAND]})
    added = {
        "type": "function_call",
        "id": item_id,
        "call_id": f"call_{index}",
        "name": tool_name,
        "arguments": "",
        "status": "in_progress",
    }
    done = {**added, "arguments": arguments, "status": "completed"}
    where = {"item_id": item_id, "output_index": output_index}
    return [
        {"type": "response.output_item.added", "output_index": output_index, "item": added},
        {"type": "response.function_call_arguments.delta", **where, "delta": arguments},
        {"type": "response.function_call_arguments.done", **where, "arguments": arguments},
        {"type": "response.output_item.done", "output_index": output_index, "item": done},
    ]


def shell_tool_name(tools: list[dict[str, Any]]) -> str:
    """The name of the client's command-running function tool (`exec_command` or `shell`)."""
    names = [tool.get("name") for tool in tools if tool.get("type") == "function"]
    for candidate in ("exec_command", "shell", "shell_command"):
        if candidate in names:
            return candidate
    raise LookupError(f"no shell tool among {names}")


def response_stream(index: int, body: dict[str, Any], tool_call: bool) -> list[dict[str, Any]]:
    """The SSE events answering request number `index` (0-based)."""
    response_id = f"resp_{index}"
    base = {
        "id": response_id,
        "object": "response",
        "created_at": 1767225600,
        "model": body.get("model", "unknown"),
        "output": [],
        "usage": None,
    }
    if tool_call and index == 0:
        tool_name = shell_tool_name(body.get("tools", []))
        items = _reasoning_events(index) + _function_call_events(index, tool_name, 1)
    else:
        items = _message_events(index)
    output = [event["item"] for event in items if event["type"] == "response.output_item.done"]
    events = [
        {"type": "response.created", "response": {**base, "status": "in_progress"}},
        {"type": "response.in_progress", "response": {**base, "status": "in_progress"}},
        *items,
        {
            "type": "response.completed",
            "response": {**base, "status": "completed", "output": output, "usage": _usage()},
        },
    ]
    return [{**event, "sequence_number": n} for n, event in enumerate(events)]


@dataclass
class CaptureServer:
    """Serve on a free port in a daemon thread; use as a context manager."""

    tool_call: bool = False
    verbose: bool = False
    requests: list[CapturedRequest] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def responses_requests(self) -> list[CapturedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/responses")]

    def __enter__(self) -> CaptureServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        capture = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                if capture.verbose:
                    super().log_message(format, *args)

            def _record(self) -> tuple[int, CapturedRequest]:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                request = CapturedRequest(self.command, self.path, dict(self.headers), body)
                with capture._lock:
                    index = len(capture.responses_requests)
                    capture.requests.append(request)
                if capture.verbose:
                    print(json.dumps(request.__dict__, indent=2), flush=True)
                return index, request

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._record()
                if self.path.split("?")[0].endswith("/models"):
                    self._json(200, {"object": "list", "data": []})
                else:
                    self._json(404, {"error": {"message": "not found", "type": "not_found"}})

            def do_POST(self) -> None:
                index, request = self._record()
                if not request.path.split("?")[0].endswith("/responses"):
                    self._json(404, {"error": {"message": "not found", "type": "not_found"}})
                    return
                body = request.body if isinstance(request.body, dict) else {}
                events = response_stream(index, body, capture.tool_call)
                data = b"".join(_sse(event) for event in events)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


FIXTURE_MODEL = "gpt-oss-120b"  # unknown to Codex: its fallback model metadata
CATALOG_MODEL = "gpt-5.5"  # in Codex's bundled model catalog


def record_fixtures(directory: Path) -> None:
    """Run `codex exec` through a tool-call turn and save both requests it sends as fixtures."""
    from tests.clients.codex.codex_cli import run_codex

    with tempfile.TemporaryDirectory() as root, CaptureServer(tool_call=True) as server:
        run = run_codex(server.base_url, FIXTURE_MODEL, Path(root))
        first, followup = server.responses_requests
    assert run.returncode == 0, run.stderr
    # A model in Codex's own catalog gets other tools (the freeform `apply_patch` with its lark
    # grammar, `tool_search`) and settings (`reasoning.effort`, `text.verbosity`).
    with tempfile.TemporaryDirectory() as root, CaptureServer() as server:
        catalog_run = run_codex(server.base_url, CATALOG_MODEL, Path(root))
        (catalog,) = server.responses_requests
    assert catalog_run.returncode == 0, catalog_run.stderr
    headers = {k.lower(): v for k, v in first.headers.items() if k.lower() != "host"}
    for name, payload in [
        ("captured_request.json", first.body),
        ("captured_followup.json", followup.body),
        ("captured_headers.json", headers),
        ("captured_request_catalog_model.json", catalog.body),
    ]:
        (directory / name).write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {directory / name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--tool-call", action="store_true", help="answer the first turn with a call"
    )
    parser.add_argument(
        "--record", action="store_true", help="run codex and rewrite the captured_*.json fixtures"
    )
    args = parser.parse_args()
    if args.record:
        record_fixtures(Path(__file__).resolve().parent)
        return
    with CaptureServer(tool_call=args.tool_call, verbose=True) as server:
        print(f"base_url: {server.base_url}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
