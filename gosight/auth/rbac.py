"""Roles and the permissions they grant.

Three roles are built in: viewer reads, editor also changes monitoring content
(endpoint labels, dashboards, alerts) and may send metrics, admin does everything.
Custom roles are stored in the metadata database as a list of permission names.
Every signed-in user also holds `account` (their own password, sessions, tokens and
MFA) and `signin` (the sign-in steps), which roles cannot remove and API tokens never
carry.
"""

from __future__ import annotations

import re

from gosight.server.routing import PERMISSIONS, PUBLIC

ACCOUNT = "account"
SIGNIN = "signin"
# Held by every signed-in user, whatever their role; not grantable to roles or tokens.
IMPLICIT = frozenset({ACCOUNT, SIGNIN})

ADMIN = "admin"
EDITOR = "editor"
VIEWER = "viewer"

VIEWER_PERMISSIONS = frozenset({"metrics:read", "endpoints:read"})
EDITOR_PERMISSIONS = VIEWER_PERMISSIONS | {"endpoints:write", "dashboards:write", "alerts:write", "metrics:write"}

ROLE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


def grantable_permissions() -> frozenset[str]:
    """Return the permissions a role or an API token may hold."""
    return frozenset(PERMISSIONS) - {PUBLIC} - IMPLICIT


BUILTIN_ROLES: dict[str, tuple[str, frozenset[str]]] = {
    ADMIN: ("Everything, including users, roles, agent tokens and security events.", grantable_permissions()),
    EDITOR: ("Read everything monitoring-related and change endpoint labels, dashboards and alerts; "
             "no user, role or token management.", EDITOR_PERMISSIONS),
    VIEWER: ("Read metrics and endpoints; change nothing but their own account.", VIEWER_PERMISSIONS),
}


def check_permissions(names: list[str] | tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    """Return `names` as a set; raise ValueError naming any that a role or token cannot hold."""
    allowed = grantable_permissions()
    unknown = sorted(set(names) - allowed)
    if unknown:
        raise ValueError(f"unknown permission {', '.join(unknown)}; expected names from {', '.join(sorted(allowed))}")
    return frozenset(names)
