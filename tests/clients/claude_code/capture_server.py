"""A fake Anthropic Messages backend that records what Claude Code sends (stdlib only).

`CaptureServer` listens on 127.0.0.1, records every request (method, path, headers, JSON body)
and answers `POST /v1/messages` with a minimal, valid streamed message: a signed thinking block
and a text block saying `REPLY_TEXT` (the signature is opaque to the client, which replays it).

By hand, from the repository root: `python -m tests.clients.claude_code.capture_server --record`
runs the installed Claude Code against it and rewrites the fixtures beside this file
(captured_request.json, the first turn's body; captured_headers.json, its headers less the
per-run ids).
"""

from __future__ import annotations

import argparse
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPLY_TEXT = "hi from the capture server"
HERE = Path(__file__).parent
# Per-run values left out of the headers fixture.
_VARYING = {"x-claude-code-session-id", "content-length", "host", "x-stainless-retry-count"}


@dataclass
class CapturedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def _events(model: str) -> bytes:
    def sse(kind: str, **fields: Any) -> str:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n"

    usage = {"input_tokens": 12, "output_tokens": 5}
    message = {
        "id": "msg_capture",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    thinking = {"type": "thinking", "thinking": "", "signature": ""}
    return "".join(
        [
            sse("message_start", message=message),
            sse("content_block_start", index=0, content_block=thinking),
            sse(
                "content_block_delta",
                index=0,
                delta={"type": "signature_delta", "signature": "sig"},
            ),
            sse("content_block_stop", index=0),
            sse("content_block_start", index=1, content_block={"type": "text", "text": ""}),
            sse("content_block_delta", index=1, delta={"type": "text_delta", "text": REPLY_TEXT}),
            sse("content_block_stop", index=1),
            sse(
                "message_delta",
                delta={"stop_reason": "end_turn", "stop_sequence": None},
                usage=usage,
            ),
            sse("message_stop"),
        ]
    ).encode()


class CaptureServer:
    """Records requests; `with CaptureServer() as server:` serves in a thread."""

    def __init__(self) -> None:
        self.requests: list[CapturedRequest] = []
        captured = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> Any:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                captured.append(CapturedRequest(self.command, self.path, dict(self.headers), body))
                return body

            def do_HEAD(self) -> None:  # noqa: N802 - the stdlib's name
                self._record()
                self.send_response(200)
                self.end_headers()

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self._record()
                if self.path.split("?")[0] != "/v1/messages":
                    self.send_response(404)
                    self.end_headers()
                    return
                data = _events(str((body or {}).get("model", "")))
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> CaptureServer:
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--record", action="store_true", help="run Claude Code, write fixtures")
    args = parser.parse_args()
    from tests.clients.claude_code.claude_cli import run_claude

    with CaptureServer() as server:
        if not args.record:
            print(server.base_url)
            threading.Event().wait()
        run = run_claude(server.base_url, "capture-model", "Say hello in five words.")
        print(run.returncode, run.stdout[-2000:], run.stderr[-2000:])
    first = next(r for r in server.requests if r.method == "POST")
    (HERE / "captured_request.json").write_text(json.dumps(first.body, indent=1) + "\n")
    headers = {k.lower(): v for k, v in first.headers.items() if k.lower() not in _VARYING}
    (HERE / "captured_headers.json").write_text(
        json.dumps(headers, indent=1, sort_keys=True) + "\n"
    )


if __name__ == "__main__":
    main()
