"""OpenID Connect single sign-on: authorization code flow with PKCE.

GET /api/v1/auth/oidc/login starts a flow. A random state, nonce and PKCE verifier
are kept on the server for ten minutes. The state also goes into a short-lived
cookie that binds the flow to this browser, and the browser goes to the provider.
GET /api/v1/auth/oidc/callback checks the state against both, exchanges the code
(with the verifier and the client secret) at the provider's token endpoint, and
accepts the ID token only with a valid signature from the provider's JWKS, the
configured issuer, this client as audience (and as `azp` when there are several),
an expiry in the future and the flow's nonce. The user is found by the link of
(issuer, subject), or else by a verified email, or else created; the role comes
from `server.auth.oidc.role_claim` through `server.auth.oidc.role_map`.

The discovery document and the JWKS come from the provider over HTTPS, and are
cached; an unknown key id fetches the JWKS again, at most once a minute.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import httpx
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gosight.auth.store import AuthStore, Conflict, User, digest
from gosight.auth.web import NO_STORE, client_ip, record, service_of, user_agent
from gosight.config import Config
from gosight.server.api.errors import ApiError

if TYPE_CHECKING:
    import jwt

# PyJWT and its key algorithms take about a tenth of a second to import, so the methods
# that verify tokens import it themselves: a server without single sign-on never does.

log = logging.getLogger(__name__)

CALLBACK_PATH = "/api/v1/auth/oidc/callback"
FLOW_COOKIE = "gosight_oidc"
FLOW_TTL_S = 600.0
MAX_FLOWS = 10_000
METADATA_TTL_S = 3600.0
JWKS_REFRESH_MIN_S = 60.0
LEEWAY_S = 60
HTTP_TIMEOUT_S = 10.0
# Only public-key algorithms: a provider's key set never holds a shared secret, and "none" is never valid.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")

PRESET_NAMES = {"google": "Google", "cognito": "AWS Cognito", "azure": "Microsoft", "generic": "single sign-on"}


class OidcError(Exception):
    """Sign-in through the provider failed; the message says why, for the log and the login page."""


def issuer_of(config: Config) -> str:
    """Return the issuer URL of the configured provider, from its preset when there is one."""
    provider = config["server.auth.oidc.provider"]
    if provider == "google":
        return "https://accounts.google.com"
    if provider == "cognito":
        region = config["server.auth.oidc.cognito_region"]
        return f"https://cognito-idp.{region}.amazonaws.com/{config['server.auth.oidc.cognito_user_pool_id']}"
    if provider == "azure":
        return f"https://login.microsoftonline.com/{config['server.auth.oidc.azure_tenant_id']}/v2.0"
    return config["server.auth.oidc.issuer"].rstrip("/")


@dataclass
class Flow:
    nonce: str
    verifier: str
    next_path: str
    redirect_uri: str
    created: float


@dataclass(frozen=True)
class Identity:
    """What a valid ID token says about the user."""

    subject: str
    email: str | None
    email_verified: bool
    name: str
    roles: tuple[str, ...]


class OidcClient:
    def __init__(self, config: Config, store: AuthStore, transport: httpx.AsyncBaseTransport | None = None):
        self.provider = config["server.auth.oidc.provider"]
        self.issuer = issuer_of(config)
        self.client_id = config["server.auth.oidc.client_id"]
        self.client_secret = config["server.auth.oidc.client_secret"]
        self.scopes = config["server.auth.oidc.scopes"]
        self.role_claim = config["server.auth.oidc.role_claim"]
        self.role_map: dict[str, str] = config["server.auth.oidc.role_map"]
        self.default_role = config["server.auth.oidc.default_role"]
        self.create_users = config["server.auth.oidc.create_users"]
        self.display_name = config["server.auth.oidc.display_name"] or PRESET_NAMES[self.provider]
        self.public_url = config["server.auth.public_url"].rstrip("/")
        self.store = store
        self._http = httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, transport=transport, follow_redirects=False)
        self._flows: dict[str, Flow] = {}
        self._lock = threading.Lock()
        self._metadata: tuple[float, dict] | None = None
        self._jwks: tuple[float, jwt.PyJWKSet] | None = None

    async def close(self) -> None:
        await self._http.aclose()

    # The provider's documents.

    async def metadata(self) -> dict:
        now = time.monotonic()
        if self._metadata and now - self._metadata[0] < METADATA_TTL_S:
            return self._metadata[1]
        url = f"{self.issuer}/.well-known/openid-configuration"
        document = await self._get_json(url, "discovery document")
        if document.get("issuer", "").rstrip("/") != self.issuer:
            raise OidcError(f"the discovery document at {url} names issuer {document.get('issuer')!r}, not "
                            f"{self.issuer!r}; check server.auth.oidc.issuer")
        for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(document.get(field), str):
                raise OidcError(f"the discovery document at {url} has no {field}")
        self._metadata = (now, document)
        return document

    async def signing_key(self, token: str) -> jwt.PyJWK:
        import jwt  # noqa: PLC0415

        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        for force in (False, True):
            keys = await self._key_set(force)
            for key in keys.keys:
                if kid is None or key.key_id == kid:
                    return key
        raise OidcError(f"the ID token is signed with key {kid!r}, which the provider's JWKS does not contain")

    async def _key_set(self, force: bool) -> jwt.PyJWKSet:
        import jwt  # noqa: PLC0415

        now = time.monotonic()
        cached = self._jwks
        if cached and (not force or now - cached[0] < JWKS_REFRESH_MIN_S) and now - cached[0] < METADATA_TTL_S:
            return cached[1]
        metadata = await self.metadata()
        document = await self._get_json(metadata["jwks_uri"], "JWKS")
        try:
            keys = jwt.PyJWKSet.from_dict(document)
        except jwt.PyJWTError as error:
            raise OidcError(f"the provider's JWKS cannot be read: {error}") from None
        self._jwks = (now, keys)
        return keys

    async def _get_json(self, url: str, what: str) -> dict:
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as error:
            raise OidcError(f"fetching the provider's {what} from {url} failed: {error}") from None
        if response.status_code != 200:
            raise OidcError(f"the provider's {what} at {url} answered HTTP {response.status_code}")
        try:
            document = response.json()
        except ValueError:
            raise OidcError(f"the provider's {what} at {url} is not JSON") from None
        if not isinstance(document, dict):
            raise OidcError(f"the provider's {what} at {url} is not a JSON object")
        return document

    # The flow.

    async def begin(self, next_path: str, base_url: str) -> tuple[str, str]:
        """Start a flow; return the provider's authorization URL and the state for the binding cookie."""
        metadata = await self.metadata()
        state = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)
        flow = Flow(nonce=secrets.token_urlsafe(32), verifier=verifier, next_path=next_path,
                    redirect_uri=(self.public_url or base_url.rstrip("/")) + CALLBACK_PATH, created=time.monotonic())
        with self._lock:
            self._drop_old_flows()
            self._flows[state] = flow
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = urlencode({
            "response_type": "code", "client_id": self.client_id, "redirect_uri": flow.redirect_uri,
            "scope": " ".join(self.scopes), "state": state, "nonce": flow.nonce,
            "code_challenge": challenge, "code_challenge_method": "S256",
        }, quote_via=quote)
        endpoint = metadata["authorization_endpoint"]
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}", state

    def take_flow(self, state: str, bound_state: str | None) -> Flow:
        """Return and forget the flow of `state`; it must match this browser's cookie and be fresh."""
        if not bound_state or not hmac.compare_digest(state.encode(), bound_state.encode()):
            raise OidcError("the sign-in response does not belong to this browser's sign-in (state mismatch); "
                            "start again")
        with self._lock:
            flow = self._flows.pop(state, None)
        if flow is None or time.monotonic() - flow.created > FLOW_TTL_S:
            raise OidcError("unknown or expired sign-in state; start again")
        return flow

    async def finish(self, code: str, flow: Flow) -> Identity:
        metadata = await self.metadata()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": flow.redirect_uri,
                "code_verifier": flow.verifier}
        methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        headers = {"Accept": "application/json"}
        if "client_secret_basic" in methods:
            # RFC 6749 section 2.3.1: both parts are form-encoded before Basic encoding.
            pair = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form.update(client_id=self.client_id, client_secret=self.client_secret)
        try:
            response = await self._http.post(metadata["token_endpoint"], data=form, headers=headers)
        except httpx.HTTPError as error:
            raise OidcError(f"the token request to {metadata['token_endpoint']} failed: {error}") from None
        if response.status_code != 200:
            detail = _error_detail(response)
            raise OidcError(f"the provider refused the code exchange (HTTP {response.status_code}{detail})")
        try:
            id_token = response.json().get("id_token")
        except ValueError:
            id_token = None
        if not isinstance(id_token, str):
            raise OidcError("the provider's token response carries no id_token; is 'openid' in "
                            "server.auth.oidc.scopes?")
        return await self.validate(id_token, flow.nonce)

    async def validate(self, id_token: str, nonce: str) -> Identity:
        """Check the ID token's signature and claims; return the identity it asserts."""
        import jwt  # noqa: PLC0415

        try:
            key = await self.signing_key(id_token)
            algorithm = key.algorithm_name if key.algorithm_name in ALGORITHMS else jwt.get_unverified_header(
                id_token).get("alg")
            if algorithm not in ALGORITHMS:
                raise OidcError(f"the ID token uses algorithm {algorithm!r}; expected one of {', '.join(ALGORITHMS)}")
            claims = jwt.decode(id_token, key=key, algorithms=[algorithm], audience=self.client_id,
                                issuer=self.issuer, leeway=LEEWAY_S,
                                options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            raise OidcError("the ID token has expired") from None
        except jwt.InvalidAudienceError:
            raise OidcError("the ID token is for another client (audience mismatch); check "
                            "server.auth.oidc.client_id") from None
        except jwt.InvalidIssuerError:
            raise OidcError(f"the ID token comes from another issuer; expected {self.issuer}") from None
        except jwt.InvalidSignatureError:
            raise OidcError("the ID token's signature is invalid") from None
        except jwt.PyJWTError as error:
            raise OidcError(f"the ID token is invalid: {error}") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise OidcError("the ID token has several audiences and another authorized party (azp)")
        sent_nonce = claims.get("nonce")
        if not isinstance(sent_nonce, str) or not hmac.compare_digest(sent_nonce.encode(), nonce.encode()):
            raise OidcError("the ID token's nonce does not match this sign-in; start again")
        email = claims.get("email") if isinstance(claims.get("email"), str) else None
        verified = claims.get("email_verified") in (True, "true")
        if self.provider == "azure" and claims.get("xms_edov") in (True, "true"):
            # Microsoft Entra ID sends no email_verified; xms_edov says the email's domain is verified by the tenant.
            verified = True
        return Identity(subject=str(claims["sub"]), email=email.lower() if email else None, email_verified=verified,
                        name=str(claims.get("name") or claims.get("preferred_username") or ""),
                        roles=_claim_values(claims, self.role_claim))

    def role_for(self, identity: Identity) -> str | None:
        """Return the role that the role claim maps to, the default role, or None (sign-in refused)."""
        for value, role in self.role_map.items():
            if value in identity.roles:
                return role
        return self.default_role or None

    def user_for(self, identity: Identity) -> tuple[User, bool, str | None]:
        """Find or create the user of `identity`; return (user, created, previous role when changed)."""
        role = self.role_for(identity)
        user = self.store.linked_user(self.issuer, identity.subject)
        if user is None:
            if not identity.email or not identity.email_verified:
                raise OidcError("the provider did not assert a verified email address, so the account cannot be "
                                "linked; see docs/users.md for the claims each provider needs")
            user = self.store.find_user_by_email(identity.email)
            created = False
            if user is None:
                if not self.create_users:
                    raise OidcError(f"no user has the email {identity.email}; ask an admin to create one "
                                    "(server.auth.oidc.create_users is false)")
                if role is None:
                    raise OidcError("your account has no role here: none of its role claim values is mapped "
                                    "(server.auth.oidc.role_map) and server.auth.oidc.default_role is empty")
                user = _create(self.store, identity, role)
                created = True
            self.store.link(self.issuer, identity.subject, user.user_id)
        else:
            created = False
        if user.disabled:
            raise OidcError(f"the account {user.username!r} is disabled; ask an admin")
        previous = None
        if self.role_claim and not created:
            if role is None:
                raise OidcError("your account has no role here: none of its role claim values is mapped")
            if role != user.role:
                previous = user.role
                user = self.store.set_role(user.user_id, role)
        return user, created, previous

    def _drop_old_flows(self) -> None:
        now = time.monotonic()
        for state in [state for state, flow in self._flows.items() if now - flow.created > FLOW_TTL_S]:
            del self._flows[state]
        while len(self._flows) >= MAX_FLOWS:
            self._flows.pop(next(iter(self._flows)))


def _create(store: AuthStore, identity: Identity, role: str) -> User:
    try:
        return store.create_user(identity.email or identity.subject, None, role, identity.email)
    except Conflict:
        # The email is taken as a user name by another account: fall back to a name that is unique.
        return store.create_user(f"{identity.email}-{secrets.token_hex(3)}", None, role, identity.email)


def _claim_values(claims: dict[str, Any], path: str) -> tuple[str, ...]:
    """Return the values of a claim named by `path`; dots step into objects unless the name itself exists."""
    if not path:
        return ()
    value: Any = claims.get(path)
    if value is None and "." in path:
        value = claims
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return tuple(part for part in value.replace(",", " ").split() if part)
    if isinstance(value, list):
        return tuple(str(item) for item in value)
    return ()


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return f": {body['error']}" + (f" ({body['error_description']})" if body.get("error_description") else "")
    return ""


# HTTP handlers.

async def start_login(request: Request) -> Response:
    service = service_of(request)
    client: OidcClient | None = service.oidc
    if client is None:
        raise ApiError(404, "single sign-on is not configured on this server (server.auth.oidc.provider)")
    next_path = request.query_params.get("next", "/")
    if not next_path.startswith("/") or next_path.startswith("//") or "\\" in next_path:
        next_path = "/"
    try:
        location, state = await client.begin(next_path, str(request.base_url))
    except OidcError as error:
        log.error("single sign-on cannot start", extra={"fields": {"error": str(error)}})
        return _to_login_page(str(error))
    response = RedirectResponse(location, status_code=303, headers=NO_STORE)
    # Lax, not Strict: the provider sends the browser back with a cross-site top-level GET.
    response.set_cookie(FLOW_COOKIE, state, max_age=int(FLOW_TTL_S), path="/api/v1/auth/oidc", httponly=True,
                        samesite="lax", secure=service.secure_cookies)
    return response


async def callback(request: Request) -> Response:
    service = service_of(request)
    client: OidcClient | None = service.oidc
    if client is None:
        raise ApiError(404, "single sign-on is not configured on this server (server.auth.oidc.provider)")
    params = request.query_params
    try:
        if params.get("error"):
            raise OidcError(f"the provider refused the sign-in: {params.get('error')} "
                            f"{params.get('error_description', '')}".strip())
        flow = client.take_flow(params.get("state", ""), request.cookies.get(FLOW_COOKIE))
        identity = await client.finish(params.get("code", ""), flow)
        user, created, previous = await service.run(client.user_for, identity)
    except ValueError as error:
        # An unknown role in server.auth.oidc.role_map or default_role.
        problem = f"the role for this account cannot be given: {error}"
        await record(request, "login_failed", method="oidc", reason=problem[:200])
        log.error("single sign-on rejected", extra={"fields": {"client": client_ip(request), "error": problem}})
        return _to_login_page(problem)
    except OidcError as error:
        await record(request, "login_failed", method="oidc", reason=str(error)[:200])
        log.warning("single sign-on rejected", extra={"fields": {"client": client_ip(request), "error": str(error)}})
        response = _to_login_page(str(error))
        response.delete_cookie(FLOW_COOKIE, path="/api/v1/auth/oidc")
        return response
    if created:
        await record(request, "user_created", user=user, method="oidc", role=user.role)
    if previous is not None:
        await record(request, "role_changed", user=user, method="oidc", old_role=previous, new_role=user.role)
    old = request.cookies.get(service.cookie_name)
    signed_in = await service.run(service.start_session, user, method="oidc", client_ip=client_ip(request),
                                  user_agent=user_agent(request), replaces=digest(old) if old else None)
    await record(request, "login_succeeded", user=user, method="oidc")
    log.info("user signed in", extra={"fields": {"user": user.username, "client": client_ip(request),
                                                 "method": "oidc"}})
    response = RedirectResponse(flow.next_path, status_code=303, headers=NO_STORE)
    response.headers["set-cookie"] = service.session_cookie(signed_in.cookie_value)
    response.delete_cookie(FLOW_COOKIE, path="/api/v1/auth/oidc")
    return response


def _to_login_page(message: str) -> Response:
    return RedirectResponse("/login?" + urlencode({"error": message[:300]}), status_code=303, headers=NO_STORE)

