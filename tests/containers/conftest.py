"""Fixtures for container tests: a private Podman serving the Docker Engine API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.containers.podman import Podman, missing_requirements, start_podman


def require_podman() -> None:
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    """One Podman for the session; each test module names its containers with its own prefix."""
    require_podman()
    running = start_podman()
    yield running
    running.close()


@pytest.fixture
def private_podman() -> Iterator[Podman]:
    """A Podman of the test's own, for tests that stop and start the service."""
    require_podman()
    running = start_podman()
    yield running
    running.close()
