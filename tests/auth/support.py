"""Helpers of the authentication tests: users made through the API, and browser-like session clients."""

from __future__ import annotations

import httpx

from tests.support.processes import Server

PASSWORD = "a-long-test-passphrase-42"


def create_user(server: Server, username: str, role: str, password: str = PASSWORD) -> dict:
    with server.client() as client:
        response = client.post("/api/v1/users", json={"username": username, "password": password, "role": role})
    assert response.status_code == 201, response.text
    return response.json()


def create_role(server: Server, name: str, permissions: list[str]) -> None:
    with server.client() as client:
        response = client.post("/api/v1/roles", json={"name": name, "permissions": permissions})
    assert response.status_code == 201, response.text


class SessionClient:
    """An HTTP client that behaves like the web app: a session cookie, the CSRF header, a same-origin Origin."""

    def __init__(self, server: Server):
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=30.0)
        self.csrf = ""

    def __enter__(self) -> SessionClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.http.close()

    def login(self, username: str, password: str = PASSWORD) -> httpx.Response:
        response = self.http.post("/api/v1/auth/login", json={"username": username, "password": password},
                                  headers={"Origin": self.server.url})
        if response.status_code == 200:
            self.csrf = response.json()["csrf_token"]
        return response

    def signed_in(self, username: str, password: str = PASSWORD) -> SessionClient:
        response = self.login(username, password)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "signed_in", response.text
        return self

    @property
    def session_cookie(self) -> str | None:
        return self.http.cookies.get("gosight_session")

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if method not in ("GET", "HEAD", "OPTIONS"):
            headers.setdefault("Origin", self.server.url)
            headers.setdefault("X-CSRF-Token", self.csrf)
        response = self.http.request(method, path, headers=headers, **kwargs)
        if response.status_code == 200 and path.startswith("/api/v1/auth/mfa") and "csrf_token" in response.text:
            self.csrf = response.json().get("csrf_token") or self.csrf
        return response

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.request("POST", path, **kwargs)
