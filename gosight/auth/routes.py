"""The routes of signing in, accounts, users, roles and security events, each with its permission."""

from __future__ import annotations

from starlette.routing import BaseRoute

from gosight.auth import account, admin, oidc
from gosight.auth.rbac import ACCOUNT, SIGNIN
from gosight.server.routing import PUBLIC, route

USERS = "users:manage"


def auth_routes() -> list[BaseRoute]:
    prefix = "/api/v1/auth"
    return [
        # Reachable before signing in: they carry their own checks (setup token, password, OIDC state).
        route(f"{prefix}/setup", account.setup_status, permission=PUBLIC),
        route(f"{prefix}/setup", account.complete_setup, permission=PUBLIC, methods=("POST",)),
        route(f"{prefix}/providers", account.providers, permission=PUBLIC),
        route(f"{prefix}/login", account.login, permission=PUBLIC, methods=("POST",)),
        route(f"{prefix}/oidc/login", oidc.start_login, permission=PUBLIC),
        route(oidc.CALLBACK_PATH, oidc.callback, permission=PUBLIC),
        # The steps of signing in, open to sessions that still owe their second factor.
        route(f"{prefix}/me", account.me, permission=SIGNIN),
        route(f"{prefix}/logout", account.logout, permission=SIGNIN, methods=("POST",)),
        route(f"{prefix}/mfa/verify", account.verify_mfa, permission=SIGNIN, methods=("POST",)),
        route(f"{prefix}/mfa/enrollment", account.start_enrollment, permission=SIGNIN, methods=("POST",)),
        route(f"{prefix}/mfa/enrollment/confirm", account.confirm_enrollment, permission=SIGNIN, methods=("POST",)),
        # One's own account.
        route(f"{prefix}/mfa", account.disable_mfa, permission=ACCOUNT, methods=("DELETE",)),
        route(f"{prefix}/mfa/recovery-codes", account.new_recovery_codes, permission=ACCOUNT, methods=("POST",)),
        route(f"{prefix}/password", account.change_password, permission=ACCOUNT, methods=("PUT",)),
        route(f"{prefix}/sessions", account.list_sessions, permission=ACCOUNT),
        route(f"{prefix}/sessions/{{session_id}}", account.end_session, permission=ACCOUNT, methods=("DELETE",)),
        route(f"{prefix}/tokens", account.list_tokens, permission=ACCOUNT),
        route(f"{prefix}/tokens", account.create_token, permission=ACCOUNT, methods=("POST",)),
        route(f"{prefix}/tokens/{{token_id}}", account.revoke_token, permission=ACCOUNT, methods=("DELETE",)),
        # Administration.
        route("/api/v1/users", admin.list_users, permission=USERS),
        route("/api/v1/users", admin.create_user, permission=USERS, methods=("POST",)),
        route("/api/v1/users/{user_id}", admin.get_user, permission=USERS),
        route("/api/v1/users/{user_id}", admin.update_user, permission=USERS, methods=("PATCH",)),
        route("/api/v1/users/{user_id}", admin.delete_user, permission=USERS, methods=("DELETE",)),
        route("/api/v1/users/{user_id}/password", admin.reset_password, permission=USERS, methods=("PUT",)),
        route("/api/v1/users/{user_id}/mfa", admin.reset_mfa, permission=USERS, methods=("DELETE",)),
        route("/api/v1/users/{user_id}/sessions", admin.end_user_sessions, permission=USERS, methods=("DELETE",)),
        route("/api/v1/roles", admin.list_roles, permission=USERS),
        route("/api/v1/roles", admin.create_role, permission=USERS, methods=("POST",)),
        route("/api/v1/roles/{name}", admin.update_role, permission=USERS, methods=("PUT",)),
        route("/api/v1/roles/{name}", admin.delete_role, permission=USERS, methods=("DELETE",)),
        route("/api/v1/security/events", admin.list_events, permission="security:read"),
        route("/api/v1/security/settings", admin.get_settings, permission="security:read"),
        route("/api/v1/security/settings", admin.update_settings, permission="security:manage", methods=("PUT",)),
    ]
