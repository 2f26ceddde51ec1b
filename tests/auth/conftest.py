"""Fixtures of the authentication tests: one server per module with a user of each role."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.auth.support import create_role, create_user
from tests.support.processes import Server, start_server

# A custom role that may read metrics and nothing else.
CUSTOM_ROLE = ("metrics-only", ["metrics:read"])
USERS = {"viewer1": "viewer", "editor1": "editor", "admin2": "admin", "custom1": CUSTOM_ROLE[0]}


@pytest.fixture(scope="module")
def users_server(tmp_path_factory) -> Iterator[Server]:
    """A server with the bootstrap admin, one user per built-in role and one with a custom role."""
    base = tmp_path_factory.mktemp("auth")
    server = start_server(base / "data", base / "server.log")
    create_role(server, *CUSTOM_ROLE)
    for username, role in USERS.items():
        create_user(server, username, role)
    yield server
    if server.proc.process.poll() is None:
        server.proc.stop()
