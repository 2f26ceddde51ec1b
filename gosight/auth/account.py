"""REST handlers of signing in and of one's own account, under /api/v1/auth.

First start: GET/POST /api/v1/auth/setup. Signing in: POST /api/v1/auth/login, then
POST /api/v1/auth/mfa/verify or the enrolment pair when the session is pending.
Own account: /api/v1/auth/me, /password, /sessions, /tokens and /mfa.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from gosight.auth import passwords, totp
from gosight.auth.service import AuthFailure, SignIn
from gosight.auth.store import (
    MAX_TOKEN_LIFETIME_S,
    STAGE_ACTIVE,
    STAGE_ENROLL,
    STAGE_MFA,
    Conflict,
    NotFound,
    digest,
    now_ms,
)
from gosight.auth.web import (
    NO_STORE,
    api_error,
    check_origin_if_sent,
    client_ip,
    json_body,
    record,
    require_principal,
    service_of,
    session_json,
    text_field,
    token_json,
    user_agent,
    user_json,
)
from gosight.security.tokens import parse_duration_s
from gosight.server.api.errors import ApiError

log = logging.getLogger(__name__)

DEFAULT_TOKEN_LIFETIME = "90d"


async def setup_status(request: Request) -> JSONResponse:
    service = service_of(request)
    required = not await service.users_exist()
    return JSONResponse({"setup_required": required, "password_min_length": service.password_min_length},
                        headers=NO_STORE)


async def complete_setup(request: Request) -> JSONResponse:
    service = service_of(request)
    check_origin_if_sent(service, request)
    body = await json_body(request)
    token, username, password = (text_field(body, name) for name in ("token", "username", "password"))
    try:
        user = await service.run(service.complete_setup, token, username, password)
    except AuthFailure as failure:
        raise api_error(failure) from None
    except (ValueError, Conflict) as error:
        raise ApiError(400, str(error)) from None
    log.info("first admin created through the setup link", extra={"fields": {"user": user.username}})
    await record(request, "setup_completed", user=user)
    signed_in = await service.run(service.start_session, user, method="password", client_ip=client_ip(request),
                                  user_agent=user_agent(request))
    return _signed_in_response(request, signed_in, status_code=201)


async def providers(request: Request) -> JSONResponse:
    """Return the ways to sign in and whether this browser has a session; this route never returns 401.

    The web app asks this first, so a signed-out visit does not start with a failed request.
    """
    service = service_of(request)
    oidc = service.oidc
    cookie = request.cookies.get(service.cookie_name)
    signed_in = False
    if cookie:
        try:
            signed_in = await service.run(service.session_principal, cookie) is not None
        except (AuthFailure, NotFound):
            signed_in = False
    return JSONResponse({
        "local": service.local_login,
        "oidc": {"name": oidc.display_name, "login_url": "/api/v1/auth/oidc/login"} if oidc else None,
        "setup_required": not await service.users_exist(),
        "signed_in": signed_in,
    }, headers=NO_STORE)


async def login(request: Request) -> JSONResponse:
    service = service_of(request)
    check_origin_if_sent(service, request)
    if not service.local_login:
        raise ApiError(403, "sign-in with a password is turned off on this server; use single sign-on",
                       code="local_login_disabled")
    if not await service.users_exist():
        raise ApiError(401, "no user account exists yet: open the setup link from the server log",
                       code="setup_required")
    body = await json_body(request)
    username, password = text_field(body, "username"), text_field(body, "password")
    try:
        user = await service.run(service.check_password, username, password, client_ip(request))
    except AuthFailure as failure:
        throttled = failure.status == 429
        suppressed = service.throttled_reports.allow((username.lower(), client_ip(request))) if throttled else 0
        if suppressed is not None:
            # A locked-out attacker's every attempt would otherwise add a row and a log line.
            await record(request, "login_throttled" if throttled else "login_failed", username=username[:64],
                         reason=failure.code, **({"suppressed": suppressed} if throttled else {}))
            log.info("sign-in rejected", extra={"fields": {"user": username[:64], "client": client_ip(request),
                                                           "reason": failure.code}})
        raise api_error(failure) from None
    signed_in = await service.run(service.start_session, user, method="password", client_ip=client_ip(request),
                                  user_agent=user_agent(request), replaces=_current_digest(request))
    stage = signed_in.session.stage
    await record(request, "login_succeeded" if stage == STAGE_ACTIVE else "login_password_accepted", user=user,
                 stage=stage)
    log.info("user signed in", extra={"fields": {"user": user.username, "client": client_ip(request),
                                                 "stage": stage}})
    return _signed_in_response(request, signed_in)


async def logout(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    if principal.session is not None:
        await service.run(service.store.end_session_by_digest, principal.session.digest)
        await record(request, "logout", user=principal.user)
    response = JSONResponse({"status": "signed_out"}, headers=NO_STORE)
    response.headers["set-cookie"] = service.cleared_cookie()
    return response


async def me(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    user = principal.user
    left = await service.run(service.store.recovery_codes_left, user.user_id) if user.mfa_enabled else 0
    return JSONResponse({
        "user": user_json(user),
        "stage": principal.stage,
        "auth": principal.kind,
        "method": principal.session.method if principal.session else principal.kind,
        "permissions": sorted(principal.permissions),
        "csrf_token": principal.session.csrf_token if principal.session else None,
        "mfa": {"enabled": user.mfa_enabled, "required": service.require_mfa, "recovery_codes_left": left},
    }, headers=NO_STORE)


async def verify_mfa(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    if principal.session is None or principal.stage != STAGE_MFA:
        raise ApiError(409, "no two-factor step is pending for this session", code="no_mfa_pending")
    user = principal.user
    try:
        service.check_throttle(user.username, client_ip(request))
    except AuthFailure as failure:
        raise api_error(failure) from None
    body = await json_body(request)
    code = text_field(body, "code", required=False)
    recovery_code = text_field(body, "recovery_code", required=False)
    if code:
        seed = await service.run(service.store.seed, user.user_id)
        step = totp.matching_step(seed, code) if seed else None
        if step is None:
            await _mfa_failed(request, user, "invalid_code")
            raise ApiError(401, "invalid two-factor code; check the time on your device", code="invalid_code")
        if not await service.run(service.store.use_totp_step, user.user_id, step):
            await _mfa_failed(request, user, "code_reused")
            raise ApiError(401, "this code was already used; wait for the next one", code="code_reused")
        await record(request, "mfa_verified", user=user)
    elif recovery_code:
        if not await service.run(service.store.use_recovery_code, user.user_id, recovery_code):
            await _mfa_failed(request, user, "invalid_recovery_code")
            raise ApiError(401, "invalid or already used recovery code", code="invalid_recovery_code")
        left = await service.run(service.store.recovery_codes_left, user.user_id)
        await record(request, "recovery_code_used", user=user, remaining=left)
    else:
        raise ApiError(400, "missing code or recovery_code")
    service.throttle.success(user.username)
    signed_in = await service.run(service.start_session, user, method=principal.session.method,
                                  client_ip=client_ip(request), user_agent=user_agent(request),
                                  replaces=principal.session.digest, mfa_done=True)
    await record(request, "login_succeeded", user=user, stage=STAGE_ACTIVE, mfa=True)
    return _signed_in_response(request, signed_in)


async def start_enrollment(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    if principal.session is None:
        raise ApiError(403, "enrol in two-factor authentication from a signed-in browser session")
    user = principal.user
    if user.mfa_enabled:
        raise ApiError(409, "two-factor authentication is already on for this account; turn it off first, or ask "
                            "an admin to reset it", code="mfa_enabled")
    seed = totp.new_seed()
    await service.run(service.store.start_enrollment, user.user_id, seed)
    uri = totp.provisioning_uri(seed, user.username)
    # The one time the seed leaves the server: the user copies it into an authenticator app.
    return JSONResponse({"secret": seed, "otpauth_uri": uri, "qr_svg": totp.qr_svg_data_url(uri)},
                        headers=NO_STORE)


async def confirm_enrollment(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    user = principal.user
    if principal.session is None:
        raise ApiError(403, "enrol in two-factor authentication from a signed-in browser session")
    seed = await service.run(service.store.pending_seed, user.user_id)
    if seed is None or user.mfa_enabled:
        raise ApiError(409, "no enrolment is in progress; start one with POST /api/v1/auth/mfa/enrollment",
                       code="no_enrollment")
    body = await json_body(request)
    step = totp.matching_step(seed, text_field(body, "code"))
    if step is None:
        await _mfa_failed(request, user, "invalid_code")
        raise ApiError(400, "invalid code: enter the 6 digits your authenticator app shows now", code="invalid_code")
    codes = await service.run(service.store.enable_mfa, user.user_id, seed, step)
    await record(request, "mfa_enrolled", user=user)
    log.info("two-factor authentication enabled", extra={"fields": {"user": user.username}})
    answer = {"recovery_codes": codes}
    signed_in = None
    if principal.stage == STAGE_ENROLL:
        refreshed = await service.run(service.store.get_user, user.user_id)
        signed_in = await service.run(service.start_session, refreshed, method=principal.session.method,
                                      client_ip=client_ip(request), user_agent=user_agent(request),
                                      replaces=principal.session.digest, mfa_done=True)
        await record(request, "login_succeeded", user=user, stage=STAGE_ACTIVE, mfa=True)
        answer["csrf_token"] = signed_in.session.csrf_token
    response = JSONResponse(answer, headers=NO_STORE)
    if signed_in is not None:
        response.headers["set-cookie"] = service.session_cookie(signed_in.cookie_value)
    return response


async def disable_mfa(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    user = principal.user
    if service.require_mfa:
        raise ApiError(409, "this server requires two-factor authentication for everyone, so it cannot be turned "
                            "off", code="mfa_required")
    body = await json_body(request)
    await _check_own_password(request, text_field(body, "password"))
    await service.run(service.store.reset_mfa, user.user_id)
    await record(request, "mfa_disabled", user=user, actor=principal)
    return JSONResponse({"mfa_enabled": False})


async def new_recovery_codes(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    if not principal.user.mfa_enabled:
        raise ApiError(409, "two-factor authentication is off, so there are no recovery codes", code="mfa_disabled")
    body = await json_body(request)
    await _check_own_password(request, text_field(body, "password"))
    codes = await service.run(service.store.replace_recovery_codes, principal.user.user_id)
    await record(request, "recovery_codes_replaced", user=principal.user)
    return JSONResponse({"recovery_codes": codes}, headers=NO_STORE)


async def change_password(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    user = principal.user
    body = await json_body(request)
    current, new = text_field(body, "current_password"), text_field(body, "new_password")
    if user.has_password:
        await _check_own_password(request, current)
    try:
        passwords.check_policy(new, service.password_min_length, user.username)
    except passwords.PasswordRejected as error:
        raise ApiError(400, str(error), code="password_rejected") from None
    await service.run(lambda: service.store.set_password_hash(user.user_id, passwords.hash_password(new)))
    keep = principal.session.digest if principal.session else None
    ended = await service.run(service.store.end_user_sessions, user.user_id, keep)
    await record(request, "password_changed", user=user, actor=principal, other_sessions_ended=ended)
    return JSONResponse({"status": "changed", "other_sessions_ended": ended})


async def list_sessions(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    sessions = await service.run(service.store.list_sessions, principal.user.user_id)
    return JSONResponse({"sessions": [session_json(session, principal.session) for session in sessions]})


async def end_session(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    session_id = request.path_params["session_id"]
    try:
        ended = await service.run(service.store.end_session, session_id, principal.user.user_id)
    except NotFound:
        raise ApiError(404, f"no session {session_id!r} of yours; GET /api/v1/auth/sessions lists them") from None
    await record(request, "session_ended", user=principal.user, actor=principal, session=session_id)
    return JSONResponse(session_json(ended, None))


async def list_tokens(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    records = await service.run(service.store.list_tokens, principal.user.user_id)
    return JSONResponse({"tokens": [token_json(item) for item in records],
                         "grantable": sorted(principal.permissions - {"account", "signin"})})


async def create_token(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    body = await json_body(request)
    name = text_field(body, "name", required=False)
    wanted = body.get("permissions")
    if not isinstance(wanted, list) or not wanted or not all(isinstance(item, str) for item in wanted):
        raise ApiError(400, "invalid permissions: expected a non-empty list of permission names, such as "
                            "[\"metrics:read\"]")
    beyond = sorted(set(wanted) - principal.permissions)
    if beyond:
        raise ApiError(403, f"your role {principal.user.role!r} does not grant {', '.join(beyond)}, so a token of "
                            "yours cannot carry it", code="forbidden")
    expires_at = _token_expiry(text_field(body, "expires", required=False, default=DEFAULT_TOKEN_LIFETIME))
    try:
        token, created = await service.run(service.store.create_token, principal.user.user_id, name,
                                           frozenset(wanted), expires_at)
    except ValueError as error:
        raise ApiError(400, str(error)) from None
    await record(request, "token_created", user=principal.user, actor=principal, token_id=created.token_id,
                 permissions=sorted(created.permissions))
    return JSONResponse({"token": token, **token_json(created)}, status_code=201, headers=NO_STORE)


async def revoke_token(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    token_id = request.path_params["token_id"]
    try:
        revoked = await service.run(service.store.revoke_token, token_id, principal.user.user_id)
    except NotFound:
        raise ApiError(404, f"no API token {token_id!r} of yours; GET /api/v1/auth/tokens lists them") from None
    await record(request, "token_revoked", user=principal.user, actor=principal, token_id=token_id)
    return JSONResponse(token_json(revoked))


def _token_expiry(text: str) -> int:
    try:
        seconds = parse_duration_s(text)
    except ValueError as error:
        raise ApiError(400, str(error)) from None
    if seconds is None or seconds > MAX_TOKEN_LIFETIME_S:
        raise ApiError(400, f"invalid expires {text!r}: API tokens need an expiry of at most 3 years, such as 90d")
    return now_ms() + int(seconds * 1000)


async def _check_own_password(request: Request, password: str) -> None:
    service = service_of(request)
    principal = require_principal(request)
    try:
        await service.run(service.check_password, principal.user.username, password, client_ip(request))
    except AuthFailure as failure:
        await record(request, "password_check_failed", user=principal.user)
        if failure.status == 401:
            raise ApiError(403, "the current password is wrong", code="invalid_credentials") from None
        raise api_error(failure) from None


async def _mfa_failed(request: Request, user, reason: str) -> None:
    service = service_of(request)
    service.throttle.failure(user.username, client_ip(request))
    await record(request, "mfa_failed", user=user, reason=reason)
    log.info("two-factor code rejected", extra={"fields": {"user": user.username, "client": client_ip(request),
                                                           "reason": reason}})


def _current_digest(request: Request) -> str | None:
    value = request.cookies.get(service_of(request).cookie_name)
    return digest(value) if value else None


def _signed_in_response(request: Request, signed_in: SignIn, status_code: int = 200) -> JSONResponse:
    service = service_of(request)
    stage = signed_in.session.stage
    status = {STAGE_ACTIVE: "signed_in", STAGE_MFA: "mfa_required", STAGE_ENROLL: "mfa_enrollment_required"}[stage]
    response = JSONResponse({"status": status, "user": user_json(signed_in.user),
                             "csrf_token": signed_in.session.csrf_token}, status_code=status_code, headers=NO_STORE)
    response.headers["set-cookie"] = service.session_cookie(signed_in.cookie_value)
    return response
