"""User API tokens on the gRPC ingest call, checked by the same rules as on HTTP.

An OpenTelemetry Collector or SDK that exports over gRPC may present a user's API token
holding metrics:write instead of an agent token, as it may over OTLP/HTTP. The agent's
control stream still takes agent tokens only.
"""

from __future__ import annotations

from gosight.auth.middleware import INGEST_PERMISSION
from gosight.auth.service import AuthFailure, AuthService
from gosight.auth.store import NotFound
from gosight.security.guard import PERMISSION_DENIED, UNAUTHENTICATED, ApiTokenCheck, CallRejected


def api_token_check(service: AuthService) -> ApiTokenCheck:
    async def check(token: str) -> str:
        try:
            principal = service.remembered_principal("token", token) or \
                await service.run(service.token_principal, token)
        except AuthFailure as failure:
            raise CallRejected(UNAUTHENTICATED, "invalid_api_token", failure.message) from None
        except NotFound:
            raise CallRejected(UNAUTHENTICATED, "invalid_api_token",
                               "the account behind this API token no longer exists") from None
        if INGEST_PERMISSION not in principal.permissions:
            token_id = principal.token.token_id if principal.token else "?"
            raise CallRejected(PERMISSION_DENIED, "missing_permission",
                               f"API token {token_id} of {principal.user.username} lacks {INGEST_PERMISSION}; "
                               f"create a token that holds it")
        return principal.user.username

    return check
