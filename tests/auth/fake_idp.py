"""A tiny OpenID Connect provider on loopback whose ID tokens the test chooses, to send tokens a real one never would.

It serves discovery, a JWKS, an authorization endpoint that hands out a code at
once, and a token endpoint that checks the client's credentials and the PKCE
verifier, then returns an ID token built by the current `scenario`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

CLIENT_ID = "gosight-test"
CLIENT_SECRET = "fake-idp-client-secret"
KEY_ID = "fake-key-1"


@dataclass
class Grant:
    nonce: str
    challenge: str
    redirect_uri: str


@dataclass
class FakeIdp:
    port: int
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537,
                                                                                    key_size=2048))
    # Changes to the ID token of the next exchange: claims to override, or "sign_with_other_key".
    scenario: dict = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    token_requests: list[dict] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def id_token(self, grant: Grant) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": CLIENT_ID, "sub": "fake-subject-1", "iat": now, "exp": now + 300,
                  "nonce": grant.nonce, "email": "sso.user@example.test", "email_verified": True,
                  "name": "SSO User", "groups": ["gosight-editors"]}
        claims.update(self.scenario.get("claims", {}))
        key = self.key
        if self.scenario.get("sign_with_other_key"):
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KEY_ID})

    def app(self) -> Starlette:
        async def discovery(request: Request) -> JSONResponse:
            return JSONResponse({
                "issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            })

        async def jwks(request: Request) -> JSONResponse:
            public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
            return JSONResponse({"keys": [{**public, "kid": KEY_ID, "alg": "RS256", "use": "sig"}]})

        async def authorize(request: Request) -> RedirectResponse:
            params = request.query_params
            code = secrets.token_urlsafe(16)
            self.grants[code] = Grant(params["nonce"], params["code_challenge"], params["redirect_uri"])
            query = urlencode({"code": code, "state": params["state"]})
            return RedirectResponse(f"{params['redirect_uri']}?{query}", status_code=302)

        async def token(request: Request) -> JSONResponse:
            form = dict(parse_qsl((await request.body()).decode()))
            self.token_requests.append(form)
            expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if request.headers.get("authorization") != expected:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            grant = self.grants.pop(form.get("code", ""), None)
            if grant is None:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if challenge != grant.challenge:
                return JSONResponse({"error": "invalid_grant", "error_description": "PKCE verifier mismatch"},
                                    status_code=400)
            return JSONResponse({"access_token": "opaque", "token_type": "Bearer", "expires_in": 300,
                                 "id_token": self.id_token(grant)})

        return Starlette(routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks", jwks),
            Route("/authorize", authorize),
            Route("/token", token, methods=["POST"]),
        ])


class RunningIdp:
    """The fake provider served by uvicorn in a thread."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.idp = FakeIdp(port=self.sock.getsockname()[1])
        self.server = uvicorn.Server(uvicorn.Config(self.idp.app(), log_config=None, access_log=False,
                                                    lifespan="off"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])),
                                       daemon=True)

    def start(self) -> FakeIdp:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise AssertionError("the fake OpenID provider did not start within 10 s")
            time.sleep(0.02)
        return self.idp

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
