"""Users, roles, sessions, API tokens, MFA state and security events in the metadata database.

Thread-safe, with its own SQLite connection (WAL mode), so `gosight user` commands
change users while the server runs and the server sees the change on the next
request. Secrets are never stored as given: session ids, API tokens and recovery
codes as SHA-256 digests (they carry 256, 256 and 80 random bits, so a fast hash
cannot be searched), passwords as scrypt hashes, and TOTP seeds sealed with the
key in auth.key (see secretbox.py).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from gosight.auth import rbac
from gosight.auth.secretbox import SecretBox
from gosight.store.meta import MetaStore

SESSION_BYTES = 32
TOKEN_PREFIX = "gsu_"
TOKEN_BYTES = 32
# API tokens always expire: a forgotten token in a script stops working within this time.
MAX_TOKEN_LIFETIME_S = 3 * 365 * 86400
RECOVERY_CODES = 10
# Recovery codes are 16 characters of these 32 (80 bits), shown as four groups of four; no i, l, o or 1.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz023456789"
USERNAME_MAX = 64
NAME_MAX = 100
EVENTS_MAX_LIMIT = 1000

STAGE_ACTIVE = "active"
STAGE_MFA = "mfa"
STAGE_ENROLL = "enroll"

_USER_COLUMNS = ("user_id, username, email, role, disabled, created_ms, last_login_ms, password_hash IS NOT NULL, "
                 "mfa_secret IS NOT NULL, password_changed_ms")
_SESSION_COLUMNS = ("session_id, user_id, csrf_token, stage, method, created_ms, last_seen_ms, expires_ms, client_ip, "
                    "user_agent, session_sha256")
_TOKEN_COLUMNS = "token_id, user_id, name, permissions, created_ms, expires_ms, revoked_ms, last_used_ms"


class NotFound(KeyError):
    """No user, role, session or token has the given name or id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class Conflict(ValueError):
    """The change would break a rule: a duplicate name, the last admin removed, a role still in use."""


@dataclass(frozen=True)
class User:
    user_id: str
    username: str
    email: str | None
    role: str
    disabled: bool
    created_ms: int
    last_login_ms: int | None
    has_password: bool
    mfa_enabled: bool
    password_changed_ms: int | None


@dataclass(frozen=True)
class Session:
    """A stored session. `session_id` is a public handle for lists; the cookie value is never stored."""

    session_id: str
    user_id: str
    csrf_token: str
    stage: str
    method: str
    created_ms: int
    last_seen_ms: int
    expires_ms: int
    client_ip: str
    user_agent: str
    digest: str


@dataclass(frozen=True)
class UserToken:
    token_id: str
    user_id: str
    name: str
    permissions: frozenset[str]
    created_ms: int
    expires_ms: int
    revoked_ms: int | None
    last_used_ms: int | None

    def status(self, now: int) -> str:
        if self.revoked_ms is not None:
            return "revoked"
        if now >= self.expires_ms:
            return "expired"
        return "active"


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    permissions: frozenset[str]
    builtin: bool


@dataclass(frozen=True)
class SecurityEvent:
    event_id: int
    time_ms: int
    type: str
    user_id: str | None
    username: str | None
    actor: str | None
    client_ip: str | None
    detail: dict


def now_ms() -> int:
    return int(time.time() * 1000)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def normalize_recovery_code(code: str) -> str:
    return "".join(character for character in code.lower() if character.isalnum())


class AuthStore:
    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        self._meta = MetaStore(self.data_dir / "meta.sqlite")
        self._box: SecretBox | None = None

    def version(self) -> tuple[int, int] | None:
        """Return a value that changes with every write to the user database, by any process; None when busy."""
        return self._meta.version()

    @property
    def box(self) -> SecretBox:
        # The key file is created on first use, so commands that never touch MFA do not create it.
        if self._box is None:
            self._box = SecretBox.from_data_dir(self.data_dir)
        return self._box

    def close(self) -> None:
        self._meta.close()

    # Users.

    def count_users(self) -> int:
        return self._meta.query("SELECT COUNT(*) FROM users")[0][0]

    def create_user(self, username: str, password_hash: str | None, role: str, email: str | None = None) -> User:
        username = check_username(username)
        self._require_role(role)
        user_id = secrets.token_hex(8)
        try:
            with self._meta.transaction() as con:
                con.execute("INSERT INTO users (user_id, username, email, role, password_hash, created_ms, "
                            "password_changed_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (user_id, username, email.lower() if email else None, role, password_hash, now_ms(),
                             now_ms() if password_hash else None))
        except sqlite3.IntegrityError:
            also = f" or with email {email!r}" if email else ""
            raise Conflict(f"a user named {username!r}{also} already exists") from None
        return self.get_user(user_id)

    def get_user(self, user_id: str) -> User:
        rows = self._meta.query(f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = ?", (user_id,))
        if not rows:
            raise NotFound(f"no user with id {user_id!r}")
        return _user(rows[0])

    def find_user(self, username: str) -> User | None:
        rows = self._meta.query(f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?", (username.strip(),))
        return _user(rows[0]) if rows else None

    def require_user(self, username: str) -> User:
        user = self.find_user(username)
        if user is None:
            raise NotFound(f"no user named {username!r}; 'gosight user list' shows them")
        return user

    def find_user_by_email(self, email: str) -> User | None:
        rows = self._meta.query(f"SELECT {_USER_COLUMNS} FROM users WHERE email = ?", (email.strip().lower(),))
        return _user(rows[0]) if rows else None

    def list_users(self) -> list[User]:
        return [_user(row) for row in self._meta.query(f"SELECT {_USER_COLUMNS} FROM users ORDER BY username")]

    def password_hash(self, user_id: str) -> str | None:
        rows = self._meta.query("SELECT password_hash FROM users WHERE user_id = ?", (user_id,))
        return rows[0][0] if rows else None

    def set_password_hash(self, user_id: str, password_hash: str) -> None:
        self._update_user(user_id, "password_hash = ?, password_changed_ms = ?", (password_hash, now_ms()))

    def set_role(self, user_id: str, role: str) -> User:
        self._require_role(role)
        with self._meta.transaction() as con:
            current = con.execute("SELECT role FROM users WHERE user_id = ?", (user_id,)).fetchone()
            if current is None:
                raise NotFound(f"no user with id {user_id!r}")
            if current[0] == rbac.ADMIN and role != rbac.ADMIN:
                _require_other_admin(con, user_id, "change the role of")
            con.execute("UPDATE users SET role = ? WHERE user_id = ?", (role, user_id))
        return self.get_user(user_id)

    def set_disabled(self, user_id: str, disabled: bool) -> User:
        with self._meta.transaction() as con:
            if disabled:
                _require_other_admin(con, user_id, "disable")
            updated = con.execute("UPDATE users SET disabled = ? WHERE user_id = ?", (int(disabled), user_id)).rowcount
            if not updated:
                raise NotFound(f"no user with id {user_id!r}")
            if disabled:
                con.execute("DELETE FROM user_sessions WHERE user_id = ?", (user_id,))
        return self.get_user(user_id)

    def set_email(self, user_id: str, email: str | None) -> None:
        try:
            self._update_user(user_id, "email = ?", (email.lower() if email else None,))
        except sqlite3.IntegrityError:
            raise Conflict(f"another user already has the email {email!r}") from None

    def note_login(self, user_id: str) -> None:
        self._update_user(user_id, "last_login_ms = ?", (now_ms(),))

    def delete_user(self, user_id: str) -> User:
        user = self.get_user(user_id)
        with self._meta.transaction() as con:
            _require_other_admin(con, user_id, "delete")
            for table in ("user_sessions", "user_tokens", "recovery_codes", "oidc_links", "users"):
                con.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))
        return user

    def _update_user(self, user_id: str, assignments: str, values: tuple) -> None:
        with self._meta.transaction() as con:
            if not con.execute(f"UPDATE users SET {assignments} WHERE user_id = ?", (*values, user_id)).rowcount:
                raise NotFound(f"no user with id {user_id!r}")

    # Roles.

    def list_roles(self) -> list[Role]:
        roles = [Role(name, description, permissions, True)
                 for name, (description, permissions) in rbac.BUILTIN_ROLES.items()]
        rows = self._meta.query("SELECT name, description, permissions FROM roles ORDER BY name")
        return roles + [Role(row[0], row[1], frozenset(json.loads(row[2])), False) for row in rows]

    def get_role(self, name: str) -> Role | None:
        return next((role for role in self.list_roles() if role.name == name), None)

    def role_permissions(self, name: str) -> frozenset[str]:
        """Return the permissions of a role; an unknown role (deleted meanwhile) grants none."""
        if name in rbac.BUILTIN_ROLES:
            return rbac.BUILTIN_ROLES[name][1]
        rows = self._meta.query("SELECT permissions FROM roles WHERE name = ?", (name,))
        # A custom role is re-checked on read, so a permission removed from the code is not granted.
        return frozenset(json.loads(rows[0][0])) & rbac.grantable_permissions() if rows else frozenset()

    def save_role(self, name: str, description: str, permissions: frozenset[str], *, create: bool) -> Role:
        if name in rbac.BUILTIN_ROLES:
            raise Conflict(f"role {name!r} is built in and cannot be changed; create a custom role instead")
        if not rbac.ROLE_NAME.match(name):
            raise ValueError(f"invalid role name {name!r}: use 1 to 40 lowercase letters, digits, '-' or '_', "
                             "starting with a letter")
        permissions = rbac.check_permissions(permissions)
        document = json.dumps(sorted(permissions))
        with self._meta.transaction() as con:
            exists = con.execute("SELECT 1 FROM roles WHERE name = ?", (name,)).fetchone() is not None
            if create and exists:
                raise Conflict(f"role {name!r} already exists")
            if not create and not exists:
                raise NotFound(f"no role named {name!r}")
            con.execute("INSERT OR REPLACE INTO roles (name, description, permissions, created_ms) VALUES "
                        "(?, ?, ?, COALESCE((SELECT created_ms FROM roles WHERE name = ?), ?))",
                        (name, description[:NAME_MAX * 2], document, name, now_ms()))
        return Role(name, description, permissions, False)

    def delete_role(self, name: str) -> None:
        if name in rbac.BUILTIN_ROLES:
            raise Conflict(f"role {name!r} is built in and cannot be deleted")
        with self._meta.transaction() as con:
            users = con.execute("SELECT COUNT(*) FROM users WHERE role = ?", (name,)).fetchone()[0]
            if users:
                raise Conflict(f"role {name!r} is held by {users} user(s); give them another role first")
            if not con.execute("DELETE FROM roles WHERE name = ?", (name,)).rowcount:
                raise NotFound(f"no role named {name!r}")

    def _require_role(self, role: str) -> None:
        if role in rbac.BUILTIN_ROLES:
            return
        if not self._meta.query("SELECT 1 FROM roles WHERE name = ?", (role,)):
            names = ", ".join(role.name for role in self.list_roles())
            raise ValueError(f"unknown role {role!r}; expected one of {names}")

    # Sessions.

    def create_session(self, user_id: str, *, stage: str, method: str, client_ip: str, user_agent: str,
                       max_age_s: float, replaces: str | None = None) -> tuple[str, Session]:
        """Create a session with a new random id and return (cookie value, session).

        `replaces` names the digest of a session to delete in the same transaction: the
        id changes at every step of signing in, so an id known before a step is useless after it.
        """
        secret = secrets.token_urlsafe(SESSION_BYTES)
        created = now_ms()
        session = Session(session_id=secrets.token_hex(8), user_id=user_id, csrf_token=secrets.token_urlsafe(32),
                          stage=stage, method=method, created_ms=created, last_seen_ms=created,
                          expires_ms=created + int(max_age_s * 1000), client_ip=client_ip[:64],
                          user_agent=user_agent[:200], digest=digest(secret))
        with self._meta.transaction() as con:
            if replaces:
                con.execute("DELETE FROM user_sessions WHERE session_sha256 = ?", (replaces,))
            con.execute("DELETE FROM user_sessions WHERE expires_ms <= ?", (created,))
            con.execute(f"INSERT INTO user_sessions ({_SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (session.session_id, user_id, session.csrf_token, stage, method, created, created,
                         session.expires_ms, session.client_ip, session.user_agent, session.digest))
        return secret, session

    def lookup_session(self, secret: str) -> Session | None:
        rows = self._meta.query(f"SELECT {_SESSION_COLUMNS} FROM user_sessions WHERE session_sha256 = ?",
                                (digest(secret),))
        return Session(*rows[0]) if rows else None

    def touch_session(self, session: Session, seen_ms: int) -> None:
        with self._meta.transaction() as con:
            con.execute("UPDATE user_sessions SET last_seen_ms = ? WHERE session_sha256 = ?", (seen_ms, session.digest))

    def list_sessions(self, user_id: str) -> list[Session]:
        rows = self._meta.query(f"SELECT {_SESSION_COLUMNS} FROM user_sessions WHERE user_id = ? AND stage = ? "
                                "ORDER BY last_seen_ms DESC", (user_id, STAGE_ACTIVE))
        return [Session(*row) for row in rows]

    def end_session(self, session_id: str, user_id: str | None = None) -> Session:
        """End one session by its public id; with `user_id`, only one of that user's sessions."""
        rows = self._meta.query(f"SELECT {_SESSION_COLUMNS} FROM user_sessions WHERE session_id = ?", (session_id,))
        if not rows or (user_id is not None and rows[0][1] != user_id):
            raise NotFound(f"no session with id {session_id!r}")
        with self._meta.transaction() as con:
            con.execute("DELETE FROM user_sessions WHERE session_id = ?", (session_id,))
        return Session(*rows[0])

    def end_session_by_digest(self, session_digest: str) -> None:
        with self._meta.transaction() as con:
            con.execute("DELETE FROM user_sessions WHERE session_sha256 = ?", (session_digest,))

    def end_user_sessions(self, user_id: str, keep_digest: str | None = None) -> int:
        with self._meta.transaction() as con:
            return con.execute("DELETE FROM user_sessions WHERE user_id = ? AND session_sha256 IS NOT ?",
                               (user_id, keep_digest)).rowcount

    # API tokens.

    def create_token(self, user_id: str, name: str, permissions: frozenset[str],
                     expires_ms: int) -> tuple[str, UserToken]:
        name = name.strip()
        if len(name) > NAME_MAX:
            raise ValueError(f"token name is {len(name)} characters long; at most {NAME_MAX} are allowed")
        permissions = rbac.check_permissions(permissions)
        if not permissions:
            raise ValueError("a token needs at least one permission, such as metrics:read")
        token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        record = UserToken(token_id=secrets.token_hex(6), user_id=user_id, name=name, permissions=permissions,
                           created_ms=now_ms(), expires_ms=expires_ms, revoked_ms=None, last_used_ms=None)
        with self._meta.transaction() as con:
            con.execute(f"INSERT INTO user_tokens (token_sha256, {_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (digest(token), record.token_id, user_id, name, json.dumps(sorted(permissions)),
                         record.created_ms, expires_ms, None, None))
        return token, record

    def lookup_token(self, token: str) -> UserToken | None:
        rows = self._meta.query(f"SELECT {_TOKEN_COLUMNS} FROM user_tokens WHERE token_sha256 = ?", (digest(token),))
        return _token(rows[0]) if rows else None

    def list_tokens(self, user_id: str | None = None) -> list[UserToken]:
        if user_id is None:
            rows = self._meta.query(f"SELECT {_TOKEN_COLUMNS} FROM user_tokens ORDER BY created_ms")
        else:
            rows = self._meta.query(f"SELECT {_TOKEN_COLUMNS} FROM user_tokens WHERE user_id = ? ORDER BY created_ms",
                                    (user_id,))
        return [_token(row) for row in rows]

    def revoke_token(self, token_id: str, user_id: str | None = None) -> UserToken:
        rows = self._meta.query(f"SELECT {_TOKEN_COLUMNS} FROM user_tokens WHERE token_id = ?", (token_id,))
        if not rows or (user_id is not None and rows[0][1] != user_id):
            raise NotFound(f"no API token with id {token_id!r}")
        with self._meta.transaction() as con:
            con.execute("UPDATE user_tokens SET revoked_ms = COALESCE(revoked_ms, ?) WHERE token_id = ?",
                        (now_ms(), token_id))
        return _token(self._meta.query(f"SELECT {_TOKEN_COLUMNS} FROM user_tokens WHERE token_id = ?",
                                       (token_id,))[0])

    def touch_token(self, token_id: str, used_ms: int) -> None:
        with self._meta.transaction() as con:
            con.execute("UPDATE user_tokens SET last_used_ms = ? WHERE token_id = ?", (used_ms, token_id))

    # MFA.

    def start_enrollment(self, user_id: str, seed: str) -> None:
        self._update_user(user_id, "mfa_pending_secret = ?", (self.box.seal(seed, user_id),))

    def pending_seed(self, user_id: str) -> str | None:
        rows = self._meta.query("SELECT mfa_pending_secret FROM users WHERE user_id = ?", (user_id,))
        return self.box.open(rows[0][0], user_id) if rows and rows[0][0] else None

    def seed(self, user_id: str) -> str | None:
        rows = self._meta.query("SELECT mfa_secret FROM users WHERE user_id = ?", (user_id,))
        return self.box.open(rows[0][0], user_id) if rows and rows[0][0] else None

    def enable_mfa(self, user_id: str, seed: str, step: int) -> list[str]:
        """Turn on TOTP with `seed`, mark `step` used, and return new recovery codes (shown once)."""
        codes = _new_recovery_codes()
        with self._meta.transaction() as con:
            con.execute("UPDATE users SET mfa_secret = ?, mfa_pending_secret = NULL, mfa_last_step = ?, "
                        "mfa_enabled_ms = ? WHERE user_id = ?", (self.box.seal(seed, user_id), step, now_ms(), user_id))
            _store_recovery_codes(con, user_id, codes)
        return codes

    def use_totp_step(self, user_id: str, step: int) -> bool:
        """Record `step` as used; return False when it or a later step was used before (a replay)."""
        with self._meta.transaction() as con:
            return con.execute("UPDATE users SET mfa_last_step = ? WHERE user_id = ? AND mfa_last_step < ?",
                               (step, user_id, step)).rowcount == 1

    def replace_recovery_codes(self, user_id: str) -> list[str]:
        codes = _new_recovery_codes()
        with self._meta.transaction() as con:
            _store_recovery_codes(con, user_id, codes)
        return codes

    def use_recovery_code(self, user_id: str, code: str) -> bool:
        """Spend a recovery code; return False when it is unknown or was used before."""
        code_digest = digest(normalize_recovery_code(code))
        with self._meta.transaction() as con:
            return con.execute("UPDATE recovery_codes SET used_ms = ? WHERE user_id = ? AND code_sha256 = ? AND "
                               "used_ms IS NULL", (now_ms(), user_id, code_digest)).rowcount == 1

    def recovery_codes_left(self, user_id: str) -> int:
        return self._meta.query("SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_ms IS NULL",
                                (user_id,))[0][0]

    def reset_mfa(self, user_id: str) -> None:
        with self._meta.transaction() as con:
            if not con.execute("UPDATE users SET mfa_secret = NULL, mfa_pending_secret = NULL, mfa_last_step = 0, "
                               "mfa_enabled_ms = NULL WHERE user_id = ?", (user_id,)).rowcount:
                raise NotFound(f"no user with id {user_id!r}")
            con.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))

    # Single sign-on links.

    def linked_user(self, issuer: str, subject: str) -> User | None:
        rows = self._meta.query("SELECT user_id FROM oidc_links WHERE issuer = ? AND subject = ?", (issuer, subject))
        if not rows:
            return None
        try:
            return self.get_user(rows[0][0])
        except NotFound:
            return None

    def link(self, issuer: str, subject: str, user_id: str) -> None:
        with self._meta.transaction() as con:
            con.execute("INSERT OR REPLACE INTO oidc_links (issuer, subject, user_id, created_ms) VALUES (?, ?, ?, ?)",
                        (issuer, subject, user_id, now_ms()))

    # Settings changed at run time by admins.

    def setting(self, name: str, default: str = "") -> str:
        rows = self._meta.query("SELECT value FROM auth_settings WHERE name = ?", (name,))
        return rows[0][0] if rows else default

    def set_setting(self, name: str, value: str) -> None:
        with self._meta.transaction() as con:
            con.execute("INSERT OR REPLACE INTO auth_settings (name, value) VALUES (?, ?)", (name, value))

    # Security events.

    def record_event(self, event_type: str, *, user: User | None = None, actor: str | None = None,
                     client_ip: str | None = None, **detail: object) -> None:
        # Failed sign-ins from many addresses grow the table by about 200 bytes each: the
        # per-address throttle bounds each source alone. Retention bounds the total.
        with self._meta.transaction() as con:
            con.execute("INSERT INTO security_events (time_ms, type, user_id, username, actor, client_ip, detail) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (now_ms(), event_type, user.user_id if user else None, user.username if user else
                         detail.pop("username", None), actor, client_ip, json.dumps(detail, default=str)))

    def prune_events(self, before_ms: int) -> int:
        """Delete the security events recorded before `before_ms`; return how many."""
        with self._meta.transaction() as con:
            return con.execute("DELETE FROM security_events WHERE time_ms < ?", (before_ms,)).rowcount

    def list_events(self, *, types: list[str] | None = None, username: str | None = None,
                    since_ms: int | None = None, until_ms: int | None = None, limit: int = 100,
                    offset: int = 0) -> tuple[int, list[SecurityEvent]]:
        """Return the number of matching events and one page of them, newest first."""
        clauses, values = [], []
        if types:
            clauses.append(f"type IN ({', '.join('?' * len(types))})")
            values.extend(types)
        if username:
            clauses.append("(username = ? COLLATE NOCASE OR actor = ? COLLATE NOCASE)")
            values.extend([username, username])
        if since_ms is not None:
            clauses.append("time_ms >= ?")
            values.append(since_ms)
        if until_ms is not None:
            clauses.append("time_ms < ?")
            values.append(until_ms)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        total = self._meta.query(f"SELECT COUNT(*) FROM security_events {where}", tuple(values))[0][0]
        rows = self._meta.query(
            f"SELECT event_id, time_ms, type, user_id, username, actor, client_ip, detail FROM security_events {where} "
            "ORDER BY event_id DESC LIMIT ? OFFSET ?", (*values, min(limit, EVENTS_MAX_LIMIT), offset))
        return total, [SecurityEvent(*row[:7], json.loads(row[7])) for row in rows]


def check_username(username: str) -> str:
    cleaned = username.strip()
    if not cleaned or len(cleaned) > USERNAME_MAX:
        raise ValueError(f"invalid user name {username!r}: use 1 to {USERNAME_MAX} characters")
    if not cleaned.isprintable() or any(character in cleaned for character in " /:\\"):
        raise ValueError(f"invalid user name {username!r}: no spaces, slashes, colons or control characters")
    return cleaned


def _require_other_admin(con: sqlite3.Connection, user_id: str, action: str) -> None:
    row = con.execute("SELECT role, disabled FROM users WHERE user_id = ?", (user_id,)).fetchone()
    if row is None:
        raise NotFound(f"no user with id {user_id!r}")
    if row[0] != rbac.ADMIN or row[1]:
        return
    others = con.execute("SELECT COUNT(*) FROM users WHERE role = ? AND disabled = 0 AND user_id != ?",
                         (rbac.ADMIN, user_id)).fetchone()[0]
    if not others:
        raise Conflict(f"cannot {action} the last enabled admin; make another user admin first")


def _new_recovery_codes() -> list[str]:
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
        codes.append("-".join(raw[index:index + 4] for index in range(0, 16, 4)))
    return codes


def _store_recovery_codes(con: sqlite3.Connection, user_id: str, codes: list[str]) -> None:
    con.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))
    con.executemany("INSERT INTO recovery_codes (user_id, code_sha256) VALUES (?, ?)",
                    [(user_id, digest(normalize_recovery_code(code))) for code in codes])


def _user(row: tuple) -> User:
    return User(user_id=row[0], username=row[1], email=row[2], role=row[3], disabled=bool(row[4]),
                created_ms=row[5], last_login_ms=row[6], has_password=bool(row[7]), mfa_enabled=bool(row[8]),
                password_changed_ms=row[9])


def _token(row: tuple) -> UserToken:
    return UserToken(token_id=row[0], user_id=row[1], name=row[2], permissions=frozenset(json.loads(row[3])),
                     created_ms=row[4], expires_ms=row[5], revoked_ms=row[6], last_used_ms=row[7])
