"""A real HTTP search endpoint for the browser tests: the `--web-search-backend` contract
(GET ?q=&n= -> {"results": [...]}) over a fixed corpus, recording every request it gets."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CORPUS = [
    {
        "title": "Harmony response format",
        "url": "https://docs.example.org/harmony",
        "snippet": "Harmony is the chat format gpt-oss was trained on.",
        "text": "\n".join(
            ["# Harmony response format", ""]
            + [f"Paragraph {i}: channels, recipients and messages." for i in range(1, 30)]
            + ["The secret word of the page is MARMALADE.", "", "End of page."]
        ),
    },
    {
        "title": "Tool calling",
        "url": "https://docs.example.org/tools",
        "snippet": "Functions are declared in the developer message.",
        "text": "Functions are declared in the developer message.\nBuilt-in tools go in the system.",
    },
]


@contextmanager
def search_endpoint() -> Iterator[tuple[str, list[str]]]:
    """(the endpoint's URL, the request paths it received); stopped on exit."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.append(self.path)
            query = parse_qs(urlsplit(self.path).query)
            words = query.get("q", [""])[0].lower().split()
            n = int(query.get("n", ["10"])[0])
            hits = [r for r in CORPUS if any(w in r["text"].lower() for w in words)][:n]
            body = json.dumps({"results": hits}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/search", seen
    finally:
        server.shutdown()
        server.server_close()
