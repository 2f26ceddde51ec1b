"""Server start-up steps of web authentication: the user store, single sign-on, the setup link."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from pathlib import Path

from gosight.auth.service import AuthService
from gosight.auth.store import AuthStore, now_ms
from gosight.config import Config, split_host_port
from gosight.security.guard import is_loopback

log = logging.getLogger(__name__)

DAY_MS = 86_400_000


async def start_auth(config: Config, data_dir: Path, shutdown: contextlib.AsyncExitStack) -> AuthService:
    """Open the user store and, when configured, the single sign-on client; register their shutdown."""
    store = AuthStore(data_dir)
    shutdown.callback(store.close)
    service = AuthService(store, config)
    pruning = asyncio.create_task(_prune_events_daily(store, config["server.auth.security_event_retention_days"]))
    shutdown.callback(pruning.cancel)
    if config["server.auth.oidc.provider"] != "none":
        # PyJWT and its key algorithms take a tenth of a second to import; servers without
        # single sign-on skip them.
        from gosight.auth.oidc import OidcClient  # noqa: PLC0415

        client = OidcClient(config, store)
        shutdown.push_async_callback(client.close)
        service.oidc = client
        log.info("single sign-on enabled", extra={"fields": {"provider": client.provider, "issuer": client.issuer,
                                                             "client_id": client.client_id}})
    if not service.secure_cookies and not _is_loopback_listen(config["server.http.listen"]):
        log.warning("session cookies travel without TLS on a non-loopback address; set server.tls.enabled true "
                    "or put the server behind an HTTPS proxy and set server.auth.public_url",
                    extra={"fields": {"http": config["server.http.listen"]}})
    return service


async def _prune_events_daily(store: AuthStore, retention_days: float) -> None:
    while True:
        horizon = now_ms() - int(retention_days * DAY_MS)
        try:
            deleted = await asyncio.to_thread(store.prune_events, horizon)
        except Exception as error:  # noqa: BLE001 - pruning is retried tomorrow, the server goes on
            log.error("cannot delete old security events", extra={"fields": {"error": str(error)}})
        else:
            if deleted:
                log.info("deleted old security events", extra={"fields": {
                    "deleted": deleted, "retention_days": retention_days}})
        await asyncio.sleep(DAY_MS / 1000)


def log_setup_link(service: AuthService, config: Config, http_address: str, tls: bool) -> str | None:
    """Log and return the one-time setup link while no user exists; the first visit through it creates the admin."""
    if service.has_users():
        return None
    token = service.create_setup_link()
    base = config["server.auth.public_url"].rstrip("/") or _browser_base(http_address, tls)
    url = f"{base}/setup?token={token}"
    # The link is the only way in before any user exists, so it goes to the log on purpose, once.
    log.warning("first start: open the setup link to create the admin account", extra={"fields": {
        "url": url, "expires_in_s": int(config["server.auth.setup_link_ttl_s"]),
        "alternative": "gosight user add --admin NAME"}})
    return url


def _browser_base(http_address: str, tls: bool) -> str:
    host, port = split_host_port(http_address)
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{host}:{port}"


def _is_loopback_listen(listen: str) -> bool:
    host, _ = split_host_port(listen)
    return is_loopback(host)
