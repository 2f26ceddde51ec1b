"""The server side of web authentication: who is calling, and the steps of signing in.

`AuthService` turns the credentials of a request (a session cookie, an API token, or
HTTP Basic on the Prometheus API) into a `Principal`. It also creates and rotates
sessions, checks passwords with throttling, and owns the one-time setup link of a
first start.
The middleware (middleware.py) decides with the principal whether a route may run.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from gosight.auth import passwords, rbac
from gosight.auth.principal_cache import PrincipalCache, credential_key
from gosight.auth.store import (
    STAGE_ACTIVE,
    STAGE_ENROLL,
    STAGE_MFA,
    TOKEN_PREFIX,
    AuthStore,
    Session,
    User,
    UserToken,
    now_ms,
)
from gosight.auth.throttle import LoginThrottle
from gosight.config import Config
from gosight.logconfig import Throttle

log = logging.getLogger(__name__)

COOKIE_NAME = "gosight_session"
# Browsers accept a __Host- cookie only with Secure, Path=/ and no Domain, so no other host can set it.
SECURE_COOKIE_NAME = "__Host-gosight_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# last_seen of sessions and last_used of tokens are written at most this often.
TOUCH_INTERVAL_MS = 60_000
# A verified Basic password is remembered this long, so Grafana's queries do not each pay for scrypt.
BASIC_CACHE_S = 300.0
REQUIRE_MFA_SETTING = "require_mfa"


class AuthFailure(Exception):
    """Credentials were rejected: `status` 401, 403 or 429; `message` goes to the client."""

    def __init__(self, status: int, message: str, code: str | None = None, retry_after_s: float | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Principal:
    """The signed-in user behind a request, and how they proved it."""

    user: User
    kind: str  # "session", "token" or "basic"
    permissions: frozenset[str]
    session: Session | None = None
    token: UserToken | None = None

    @property
    def stage(self) -> str:
        return self.session.stage if self.session else STAGE_ACTIVE


@dataclass
class SetupLink:
    """The one-time link of a first start; only its digest is kept."""

    digest: str
    expires_ms: int
    used: bool = False


@dataclass
class SignIn:
    """The result of a correct password: a new session and what the user must do next."""

    cookie_value: str
    session: Session
    user: User


@dataclass
class _BasicCache:
    entries: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class AuthService:
    def __init__(self, store: AuthStore, config: Config):
        self.store = store
        self.config = config
        self.idle_ms = int(config["server.auth.session_idle_timeout_s"] * 1000)
        # Writing last_seen every minute is precise enough for hours of idle time, not for seconds.
        self.touch_ms = min(TOUCH_INTERVAL_MS, self.idle_ms // 10)
        self.max_age_s = float(config["server.auth.session_max_age_s"])
        self.throttle = LoginThrottle(max_failures_account=config["server.auth.login_max_failures"],
                                      max_failures_address=config["server.auth.login_max_failures_per_address"],
                                      lockout_s=config["server.auth.login_lockout_s"])
        self.secure_cookies = _secure_cookies(config)
        self.cookie_name = SECURE_COOKIE_NAME if self.secure_cookies else COOKIE_NAME
        self.local_login = bool(config["server.auth.local_login"])
        self.public_origin = _origin(config["server.auth.public_url"]) if config["server.auth.public_url"] else ""
        self.setup: SetupLink | None = None
        self.oidc = None  # an OidcClient when single sign-on is configured (set by the server)
        self._has_users = False
        self._setup_lock = threading.Lock()
        # Throttled sign-in attempts are recorded and logged at most once a minute per account and address.
        self.throttled_reports = Throttle(60.0)
        self._basic = _BasicCache()
        self._principals: PrincipalCache[Principal] = PrincipalCache()
        # The cache keys are HMACs under a random key of this process, so no password can be tested against them.
        self._basic_key = secrets.token_bytes(32)

    # First start.

    def has_users(self) -> bool:
        """Return whether any user exists; once true it stays true (the last admin cannot be deleted)."""
        if not self._has_users:
            self._has_users = self.store.count_users() > 0
        return self._has_users

    async def users_exist(self) -> bool:
        """Return has_users(), from memory without a thread hop once it is true."""
        return self._has_users or await self.run(self.has_users)

    def create_setup_link(self) -> str:
        """Create the one-time setup token; the caller logs the link that carries it."""
        token = secrets.token_urlsafe(32)
        self.setup = SetupLink(digest=_sha256(token),
                               expires_ms=now_ms() + int(self.config["server.auth.setup_link_ttl_s"] * 1000))
        return token

    def check_setup_token(self, token: str) -> None:
        link = self.setup
        if self.has_users():
            raise AuthFailure(409, "setup is already complete; sign in instead", code="setup_complete")
        if link is None or link.used or not hmac.compare_digest(link.digest, _sha256(token)):
            raise AuthFailure(403, "invalid setup token: open the link from the server log (the line 'first start: "
                                   "open the setup link'), or run 'gosight user add --admin NAME' on the server",
                              code="invalid_setup_token")
        if now_ms() >= link.expires_ms:
            raise AuthFailure(403, "the setup link expired; restart the server for a new one, or run 'gosight user "
                                   "add --admin NAME' on the server", code="setup_link_expired")

    def complete_setup(self, token: str, username: str, password: str) -> User:
        """Create the first admin with the setup token; the lock lets only one of two racing requests use it."""
        with self._setup_lock:
            self.check_setup_token(token)
            passwords.check_policy(password, self.password_min_length, username)
            assert self.setup is not None
            user = self.store.create_user(username, passwords.hash_password(password), rbac.ADMIN)
            self.setup.used = True
            self._has_users = True
        return user

    @property
    def password_min_length(self) -> int:
        return self.config["server.auth.password_min_length"]

    @property
    def require_mfa(self) -> bool:
        return self.store.setting(REQUIRE_MFA_SETTING, "false") == "true"

    # Signing in with a password.

    def check_password(self, username: str, password: str, client_ip: str) -> User:
        """Return the user whose password this is, or raise AuthFailure (401 or 429) after counting the failure."""
        self.check_throttle(username, client_ip)
        user = self.store.find_user(username)
        stored = self.store.password_hash(user.user_id) if user else None
        if not passwords.verify_password(password, stored) or user is None:
            self.throttle.failure(username, client_ip)
            raise AuthFailure(401, "invalid user name or password", code="invalid_credentials")
        if user.disabled:
            # Only a caller with the right password learns that the account is disabled.
            raise AuthFailure(403, f"the account {user.username!r} is disabled; ask an admin", code="disabled")
        self.throttle.success(username)
        return user

    def check_throttle(self, username: str, client_ip: str) -> None:
        locked = self.throttle.retry_after(username, client_ip)
        if locked is None:
            return
        kind, seconds = locked
        wait = max(1, int(seconds + 0.999))
        subject = "this account" if kind == "account" else "this address"
        raise AuthFailure(429, f"too many failed sign-in attempts for {subject}; retry in {wait} s",
                          code="too_many_attempts", retry_after_s=wait)

    def start_session(self, user: User, *, method: str, client_ip: str, user_agent: str,
                      replaces: str | None = None, mfa_done: bool = False) -> SignIn:
        """Create the session of a user who proved their first factor; its stage names the step still owed."""
        stage = STAGE_ACTIVE
        if method == "password" and not mfa_done:
            if user.mfa_enabled:
                stage = STAGE_MFA
            elif self.require_mfa:
                stage = STAGE_ENROLL
        value, session = self.store.create_session(user.user_id, stage=stage, method=method, client_ip=client_ip,
                                                   user_agent=user_agent, max_age_s=self.max_age_s,
                                                   replaces=replaces)
        if stage == STAGE_ACTIVE:
            self.store.note_login(user.user_id)
        return SignIn(value, session, user)

    # Who is calling.

    def permissions_of(self, user: User) -> frozenset[str]:
        return self.store.role_permissions(user.role) | rbac.IMPLICIT

    def remembered_principal(self, kind: str, credential: str) -> Principal | None:
        """Return the principal of a token or session resolved moments ago, if still valid; no I/O.

        A miss, or an entry that expired since, returns None: the caller then resolves the
        credential in full, which also gives the precise error.
        """
        key = credential_key(kind, credential)
        principal = self._principals.get(key, self.store.version())
        if principal is None:
            return None
        now = now_ms()
        if principal.token is not None and principal.token.status(now) != "active":
            self._principals.drop(key)
            return None
        session = principal.session
        if session is not None and (now >= session.expires_ms or now - session.last_seen_ms >= self.idle_ms):
            self._principals.drop(key)
            return None
        return principal

    def session_principal(self, cookie_value: str) -> Principal | None:
        """Return the principal of a session cookie; raise AuthFailure when the session is unknown or expired."""
        version = self.store.version()
        principal = self._session_principal(cookie_value)
        self._principals.put(credential_key("session", cookie_value), version, principal)
        return principal

    def _session_principal(self, cookie_value: str) -> Principal:
        session = self.store.lookup_session(cookie_value)
        if session is None:
            raise AuthFailure(401, "your session ended or is unknown; sign in again", code="session_invalid")
        now = now_ms()
        if now >= session.expires_ms or now - session.last_seen_ms >= self.idle_ms:
            self.store.end_session_by_digest(session.digest)
            reason = "it reached its maximum age" if now >= session.expires_ms else "it was idle too long"
            raise AuthFailure(401, f"your session expired because {reason}; sign in again", code="session_expired")
        user = self.store.get_user(session.user_id)
        if user.disabled:
            self.store.end_session_by_digest(session.digest)
            raise AuthFailure(401, "your account is disabled", code="disabled")
        if now - session.last_seen_ms >= self.touch_ms:
            self.store.touch_session(session, now)
        permissions = self.permissions_of(user) if session.stage == STAGE_ACTIVE else frozenset({rbac.SIGNIN})
        return Principal(user=user, kind="session", permissions=permissions, session=session)

    def token_principal(self, token: str) -> Principal:
        """Return the principal of an API token; raise AuthFailure when it is unknown, revoked or expired."""
        version = self.store.version()
        principal = self._token_principal(token)
        self._principals.put(credential_key("token", token), version, principal)
        return principal

    def _token_principal(self, token: str) -> Principal:
        record = self.store.lookup_token(token) if token.startswith(TOKEN_PREFIX) else None
        if record is None:
            raise AuthFailure(401, "unknown API token; create one on your account page or with 'gosight user "
                                   "token'", code="invalid_token")
        now = now_ms()
        status = record.status(now)
        if status != "active":
            raise AuthFailure(401, f"API token {record.token_id} is {status}; create a new one", code="invalid_token")
        user = self.store.get_user(record.user_id)
        if user.disabled:
            raise AuthFailure(401, f"API token {record.token_id} belongs to a disabled account", code="disabled")
        if now - (record.last_used_ms or 0) >= TOUCH_INTERVAL_MS:
            self.store.touch_token(record.token_id, now)
        # A token never holds more than its owner's role grants today.
        permissions = record.permissions & self.store.role_permissions(user.role)
        return Principal(user=user, kind="token", permissions=permissions, token=record)

    def basic_principal(self, credentials: str, client_ip: str) -> Principal:
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthFailure(401, "malformed Basic credentials: expected base64 of user:password") from None
        username, separator, password = decoded.partition(":")
        if not separator:
            raise AuthFailure(401, "malformed Basic credentials: expected base64 of user:password")
        user = self.store.find_user(username)
        key = self._basic_cache_key(user, password) if user else ""
        if not (key and self._cached(key)):
            user = self.check_password(username, password, client_ip)
            key = self._basic_cache_key(user, password)
            with self._basic.lock:
                self._basic.entries[key] = time.monotonic() + BASIC_CACHE_S
        assert user is not None
        if user.disabled:
            raise AuthFailure(401, "invalid user name or password", code="invalid_credentials")
        if user.mfa_enabled or self.require_mfa:
            raise AuthFailure(401, f"the account {user.username!r} uses MFA, which Basic authentication cannot "
                                   "carry; create an API token on your account page and send it as a Bearer token",
                              code="mfa_required")
        return Principal(user=user, kind="basic", permissions=self.permissions_of(user) - rbac.IMPLICIT)

    def _basic_cache_key(self, user: User, password: str) -> str:
        stored = self.store.password_hash(user.user_id) or ""
        message = "\0".join([user.user_id, password, stored]).encode("utf-8")
        return hmac.new(self._basic_key, message, hashlib.sha256).hexdigest()

    def _cached(self, key: str) -> bool:
        now = time.monotonic()
        with self._basic.lock:
            expiry = self._basic.entries.get(key)
            if expiry is None or expiry <= now:
                self._basic.entries.pop(key, None)
                if len(self._basic.entries) > 10_000:
                    self._basic.entries = {k: v for k, v in self._basic.entries.items() if v > now}
                return False
            return True

    # Cookies and request checks.

    def session_cookie(self, value: str) -> str:
        parts = [f"{self.cookie_name}={value}", "Path=/", "HttpOnly", "SameSite=Strict",
                 f"Max-Age={int(self.max_age_s)}"]
        if self.secure_cookies:
            parts.append("Secure")
        return "; ".join(parts)

    def cleared_cookie(self) -> str:
        parts = [f"{self.cookie_name}=", "Path=/", "HttpOnly", "SameSite=Strict", "Max-Age=0"]
        if self.secure_cookies:
            parts.append("Secure")
        return "; ".join(parts)

    def origin_allowed(self, origin: str, scheme: str, host: str) -> bool:
        """Return whether a browser's Origin header names this server."""
        if not origin or origin == "null":
            return False
        allowed = {f"{scheme}://{host}".lower()}
        if self.public_origin:
            allowed.add(self.public_origin)
        return origin.lower().rstrip("/") in allowed

    async def run(self, function, *args, **kwargs):
        """Run a blocking store or hashing call off the event loop."""
        return await asyncio.to_thread(function, *args, **kwargs)


def is_pending(principal: Principal | None) -> bool:
    return principal is not None and principal.stage in (STAGE_MFA, STAGE_ENROLL)


def _secure_cookies(config: Config) -> bool:
    mode = config["server.auth.cookie_secure"]
    if mode == "auto":
        return bool(config["server.tls.enabled"]) or config["server.auth.public_url"].startswith("https://")
    return mode == "true"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
