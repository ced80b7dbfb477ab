"""The background-response tests' fixtures: the response-store tests' PostgreSQL server (a
throwaway cluster, tests/responses/conftest.py), and helpers shared by the test modules."""

from __future__ import annotations

from tests.responses.conftest import location, postgres_server, postgres_url

__all__ = ["location", "postgres_server", "postgres_url"]
