"""The server around the core: the app and its pure-ASGI edge, error answers, SSE, the CLI and
its settings, drain and exit codes, worker processes, metrics and the request log."""
