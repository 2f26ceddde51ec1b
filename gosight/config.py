"""Every GoSight setting, declared once, and the loader that reads them.

A setting has one dotted name (`agent.interval_s`) that is used everywhere: as a
nested key in the YAML file, as the environment variable `GOSIGHT_AGENT_INTERVAL_S`
and as the flag `--agent.interval_s`. Later sources win: defaults, then the file,
then the environment, then flags. Loading validates every value and reports all
problems at once.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gosight.model import IDENTITY_LABELS
from gosight.security.fingerprints import normalize_fingerprint

ENV_PREFIX = "GOSIGHT_"
CONFIG_ENV = "GOSIGHT_CONFIG"

SERVER = "server"
AGENT = "agent"
BOTH = frozenset({SERVER, AGENT})


class ConfigError(Exception):
    """Raised with every invalid setting found, one message line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


# Parsers turn a raw value (a YAML scalar, or a string from the environment or a
# flag) into the setting's type, or raise ValueError naming what is allowed.

Parser = Callable[[Any], Any]


def parse_str(raw: Any) -> str:
    if isinstance(raw, (dict, list)):
        raise ValueError("expected a string")
    return "" if raw is None else str(raw)


def directory_path(raw: Any) -> str:
    text = parse_str(raw).strip()
    if not text:
        raise ValueError("expected a directory path; unset the setting to use the default")
    # Absolute at once, so the logs and every later step name the same directory.
    return os.path.abspath(os.path.expanduser(text))


def integer(minimum: int | None = None, maximum: int | None = None) -> Parser:
    def parse(raw: Any) -> int:
        if isinstance(raw, bool):
            raise ValueError(_expected("an integer", minimum, maximum))
        try:
            value = int(str(raw).replace("_", ""))
        except ValueError:
            raise ValueError(_expected("an integer", minimum, maximum)) from None
        _check_range(value, "an integer", minimum, maximum)
        return value

    return parse


def number(minimum: float | None = None, maximum: float | None = None) -> Parser:
    def parse(raw: Any) -> float:
        if isinstance(raw, bool):
            raise ValueError(_expected("a number", minimum, maximum))
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValueError(_expected("a number", minimum, maximum)) from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(_expected("a finite number", minimum, maximum))
        _check_range(value, "a number", minimum, maximum)
        return value

    return parse


def parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def choice(*allowed: str) -> Parser:
    def parse(raw: Any) -> str:
        text = parse_str(raw).strip().lower()
        if text not in allowed:
            raise ValueError("expected one of " + ", ".join(allowed))
        return text

    return parse


def string_list(allowed: Iterable[str] | None = None) -> Parser:
    """Parse a YAML list or a comma-separated string, checking names against `allowed`."""
    allowed_set = tuple(allowed) if allowed is not None else None

    def parse(raw: Any) -> list[str]:
        if raw is None:
            return []
        items = raw if isinstance(raw, list) else str(raw).split(",")
        values = [str(item).strip() for item in items if str(item).strip()]
        if allowed_set is not None:
            unknown = [value for value in values if value not in allowed_set]
            if unknown:
                raise ValueError(
                    "unknown name " + ", ".join(unknown) + "; expected names from " + ", ".join(allowed_set)
                )
        return values

    return parse


LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def label_map(raw: Any) -> dict[str, str]:
    """Parse a YAML mapping or `name=value,name2=value2` into Prometheus labels."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        pairs = [(str(key), "" if value is None else str(value)) for key, value in raw.items()]
    else:
        pairs = []
        for item in str(raw).split(","):
            if not item.strip():
                continue
            name, sep, value = item.partition("=")
            if not sep:
                raise ValueError("expected name=value pairs separated by commas, got " + repr(item))
            pairs.append((name.strip(), value.strip()))
    for name, _ in pairs:
        if not LABEL_NAME.match(name) or name.startswith("__"):
            raise ValueError(
                f"label name {name!r} is invalid; use letters, digits and underscores, not starting with a digit or '__'"
            )
    return dict(pairs)


def address(default_port: int | None = None) -> Parser:
    """Parse `host:port`; `default_port` fills a missing port when given."""

    def parse(raw: Any) -> str:
        text = parse_str(raw).strip()
        if "://" in text:
            scheme = text.split("://", 1)[0]
            raise ValueError(f"expected host:port without a scheme, for example 127.0.0.1:4317; drop '{scheme}://'")
        host, port = split_host_port(text, default_port)
        if not host:
            raise ValueError("expected host:port, for example 127.0.0.1:4317")
        if not _valid_host(host):
            raise ValueError(f"{host!r} is not a host name or IP address")
        if not 0 <= port <= 65535:
            raise ValueError("the port must be between 0 and 65535")
        return join_host_port(host, port)

    return parse


_HOST_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    return len(host) <= 253 and all(_HOST_LABEL.match(label) for label in labels)


def regex(raw: Any) -> str:
    text = parse_str(raw)
    try:
        re.compile(text)
    except re.error as error:
        raise ValueError(f"expected a regular expression: {error}") from None
    return text


def fingerprint(raw: Any) -> str:
    """Parse a certificate fingerprint `sha256:<hex>`; empty means none."""
    text = parse_str(raw).strip()
    return normalize_fingerprint(text) if text else ""


def role_mapping(raw: Any) -> dict[str, str]:
    """Parse a YAML mapping or `value=role,value2=role2` of single sign-on claim values to role names."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        pairs = [(str(key).strip(), "" if value is None else str(value).strip()) for key, value in raw.items()]
    else:
        pairs = []
        for item in str(raw).split(","):
            if not item.strip():
                continue
            value, sep, role = item.rpartition("=")
            if not sep or not value.strip():
                raise ValueError("expected claim-value=role pairs separated by commas, got " + repr(item))
            pairs.append((value.strip(), role.strip()))
    for value, role in pairs:
        if not re.match(r"^[a-z][a-z0-9_-]{0,39}$", role):
            raise ValueError(f"invalid role name {role!r} for claim value {value!r}")
    return dict(pairs)


def engine_address(raw: Any) -> str:
    """Parse the address of a Docker Engine API: empty, a socket path, or a unix:// or tcp:// URL."""
    text = parse_str(raw).strip()
    if not text or text.startswith("/"):
        return text
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in ("unix", "tcp") or not rest:
        raise ValueError("expected a socket path such as /run/podman/podman.sock, or a unix:// or tcp:// URL "
                         "such as unix:///var/run/docker.sock")
    return text


def split_host_port(text: str, default_port: int | None = None) -> tuple[str, int]:
    """Split `host:port`, `[v6]:port` or a bare host; raise ValueError when the port is missing or invalid."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not port_text:
        if default_port is None:
            raise ValueError("expected host:port, for example 127.0.0.1:4317")
        return host, default_port
    if not port_text.isdigit():
        raise ValueError(f"the port {port_text!r} is not a number")
    return host, int(port_text)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _expected(kind: str, minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"expected {kind} between {_bound(minimum)} and {_bound(maximum)}"
    if minimum is not None:
        return f"expected {kind} of at least {_bound(minimum)}"
    if maximum is not None:
        return f"expected {kind} of at most {_bound(maximum)}"
    return f"expected {kind}"


def _bound(number: float) -> str:
    # Whole numbers in full (1073741824, not 1.07374e+09), so they can be typed back.
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _check_range(value: float, kind: str, minimum: float | None, maximum: float | None) -> None:
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(_expected(kind, minimum, maximum))


class DataDirError(Exception):
    """The data directory cannot be created or written; the message names the fix."""


def ensure_data_dir(path: Path) -> Path:
    """Create the data directory (owner-only) if it is missing and check that it is writable."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as error:
        raise DataDirError(f"cannot create the data directory {path}: {error.strerror}; "
                           "set data_dir (--data-dir) to a writable directory") from None
    if not os.access(path, os.W_OK):
        raise DataDirError(f"the data directory {path} is not writable; set data_dir (--data-dir) to a "
                           "writable directory")
    return path


def server_data_problem(path: Path, *, creating: bool = False) -> str | None:
    """Return why `path` is not a server's data directory, for the offline admin commands; None if it is.

    With `creating`, a directory without server data is fine, as for the first admin
    created before the first start.
    """
    if (path / "meta.sqlite").exists():
        return None
    demo_server = path / "server"
    if (demo_server / "meta.sqlite").exists():
        return (f"{path} is a demo's data directory; its server keeps users and tokens in {demo_server}, so pass "
                f"--data-dir {demo_server}")
    if creating:
        return None
    if not path.is_dir():
        return f"the data directory {path} does not exist; pass the server's --data-dir"
    return (f"{path} holds no server data (no meta.sqlite); pass the data directory the server runs with "
            "(--data-dir, data_dir in its configuration)")


def default_data_dir() -> str:
    """Return /var/lib/gosight for root, else the XDG data directory of the user."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return "/var/lib/gosight"
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "gosight")


@dataclass(frozen=True)
class Setting:
    name: str
    parse: Parser
    default: Any
    help: str
    roles: frozenset[str] = BOTH
    unit: str = ""
    alias: str | None = None
    type_name: str = "string"
    # A secret's value is never printed, by check-config or in error messages.
    secret: bool = False

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper().replace(".", "_")

    @property
    def flag(self) -> str:
        return "--" + self.name


HOST_COLLECTORS = ("cpu", "load", "memory", "filesystem", "disk", "network", "host", "processes")
# Collectors of what runs on the host; their series belong to endpoints of their own.
CONTAINER_COLLECTORS = ("containers",)
COLLECTOR_NAMES = HOST_COLLECTORS + CONTAINER_COLLECTORS

# node_exporter's default exclusions (version 1.x), so both tools report the same set.
DEFAULT_FS_EXCLUDE_MOUNTPOINTS = r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
DEFAULT_FS_EXCLUDE_FSTYPES = (
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs"
    r"|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$"
)
DEFAULT_DISK_EXCLUDE_DEVICES = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"

_SERVER = frozenset({SERVER})
_AGENT = frozenset({AGENT})

SETTINGS: tuple[Setting, ...] = (
    # Shared by both roles.
    Setting("data_dir", directory_path, None, "Directory for all state: the metric store, the agent spool and identity. "
            "Defaults to /var/lib/gosight for root and the XDG data directory (~/.local/share/gosight) otherwise.",
            alias="--data-dir", type_name="path"),
    Setting("log.level", choice("debug", "info", "warning", "error"), "info", "Minimum level of log messages.",
            alias="--log-level", type_name="choice"),
    Setting("log.format", choice("text", "json"), "text", "Log line format: text for people, json for log shippers.",
            alias="--log-format", type_name="choice"),

    # Server.
    Setting("server.http.listen", address(), "127.0.0.1:8080",
            "Address of the web port: dashboard, REST API, Prometheus API and OTLP/HTTP. Port 0 picks a free port.",
            _SERVER, alias="--http-listen", type_name="host:port"),
    Setting("server.grpc.listen", address(), "127.0.0.1:4317",
            "Address of the gRPC port: OTLP metrics and the agent control stream. Port 0 picks a free port.",
            _SERVER, alias="--grpc-listen", type_name="host:port"),
    Setting("server.ingest.max_message_bytes", integer(1024, 1 << 30), 16 << 20,
            "Largest accepted OTLP message, over gRPC (after decompression) and HTTP.", _SERVER, unit="bytes",
            type_name="integer"),
    Setting("server.ingest.queue_samples", integer(1000), 2_000_000,
            "Samples the ingest queue holds before senders are told to retry later.", _SERVER, unit="samples",
            type_name="integer"),
    Setting("server.ingest.max_future_s", integer(0), 600,
            "Samples stamped further than this in the future are rejected.", _SERVER, unit="seconds",
            type_name="integer"),
    Setting("server.presence.idle_after_s", integer(1), 30,
            "An endpoint not heard from for this long is shown as idle.", _SERVER, unit="seconds", type_name="integer"),
    Setting("server.presence.offline_after_s", integer(1), 120,
            "An endpoint not heard from for this long is shown as offline.", _SERVER, unit="seconds",
            type_name="integer"),
    Setting("server.shutdown_timeout_s", number(0), 30.0,
            "Time allowed on shutdown for in-flight requests and the ingest queue to drain.", _SERVER,
            unit="seconds", type_name="number"),

    # Transport security (docs/security.md).
    Setting("server.tls.enabled", parse_bool, False,
            "Serve TLS (1.2 or 1.3) on the gRPC port and the web port. Without server.tls.cert_file, the server "
            "creates a CA and a server certificate in server.tls.dir on first start and logs the CA's fingerprint.",
            _SERVER, type_name="bool"),
    Setting("server.tls.dir", parse_str, "",
            "Directory of the built-in certificate authority, the server certificate and the revocation list, "
            "shared with 'gosight certs'; empty means tls inside data_dir.", _SERVER, type_name="path"),
    Setting("server.tls.cert_file", parse_str, "",
            "PEM file with the server certificate, followed by its CA certificate so agents can pin it; empty "
            "means server.crt in server.tls.dir, created when missing.", _SERVER, type_name="path"),
    Setting("server.tls.key_file", parse_str, "",
            "PEM file with the server certificate's private key; required with server.tls.cert_file.", _SERVER,
            type_name="path"),
    Setting("server.tls.client_auth", choice("none", "require"), "none",
            "Client certificates on the gRPC port: none, or require (mutual TLS) a certificate signed by "
            "server.tls.client_ca_file and not revoked. The web port never asks for one.", _SERVER,
            type_name="choice"),
    Setting("server.tls.client_ca_file", parse_str, "",
            "PEM file with the CA certificates that sign agents' client certificates; empty means ca.crt in "
            "server.tls.dir.", _SERVER, type_name="path"),
    Setting("server.tls.crl_file", parse_str, "",
            "PEM certificate revocation list signed by the client CA, re-read when it changes; empty means ca.crl "
            "in server.tls.dir, which 'gosight certs revoke' writes. A missing file revokes nothing.", _SERVER,
            type_name="path"),
    Setting("server.tls.cert_hosts", string_list(), [],
            "Host names and IP addresses added to the server certificate GoSight creates, besides this host's "
            "names and loopback; a list or a comma-separated string.", _SERVER, type_name="list"),
    Setting("server.tls.ca_validity_days", number(1, 36500), 3650.0,
            "Validity of the certificate authority GoSight creates.", _SERVER, unit="days", type_name="number"),
    Setting("server.tls.cert_validity_days", number(1, 36500), 825.0,
            "Validity of the server and client certificates GoSight creates.", _SERVER, unit="days",
            type_name="number"),
    Setting("server.auth.require_agent_token", choice("auto", "true", "false"), "auto",
            "Whether agents and OTLP senders must present a token (gosight token create): true, false, or auto, "
            "which requires one on each port (gRPC, and POST /v1/metrics on the web port) whose listen address "
            "is not loopback.", _SERVER, type_name="choice"),

    # Web users, sessions and single sign-on (docs/users.md).
    Setting("server.auth.public_url", parse_str, "",
            "Address browsers use to reach the server, such as https://metrics.example.com, when it differs from "
            "the listen address (a proxy): used in the setup link, the single sign-on redirect URI and the "
            "Origin check. Empty means the address the browser sent.", _SERVER, type_name="url"),
    Setting("server.auth.session_idle_timeout_s", number(1), 28_800.0,
            "A session unused for this long ends; the user signs in again.", _SERVER, unit="seconds",
            type_name="number"),
    Setting("server.auth.session_max_age_s", number(1), 604_800.0,
            "A session ends this long after sign-in, even when in use.", _SERVER, unit="seconds", type_name="number"),
    Setting("server.auth.cookie_secure", choice("auto", "true", "false"), "auto",
            "Mark the session cookie Secure (sent over HTTPS only): auto does when server.tls.enabled is true or "
            "server.auth.public_url starts with https://.", _SERVER, type_name="choice"),
    Setting("server.auth.password_min_length", integer(8, 256), 12,
            "Shortest password accepted; passwords on the bundled list of common passwords are always refused.",
            _SERVER, unit="characters", type_name="integer"),
    Setting("server.auth.login_max_failures", integer(1), 5,
            "Failed sign-in attempts for one account within 15 minutes before it is locked for "
            "server.auth.login_lockout_s, doubling with each further failure up to 15 minutes.", _SERVER,
            unit="attempts", type_name="integer"),
    Setting("server.auth.login_max_failures_per_address", integer(1), 20,
            "Failed sign-in attempts from one client address within 15 minutes before it is locked the same way.",
            _SERVER, unit="attempts", type_name="integer"),
    Setting("server.auth.login_lockout_s", number(1, 3600), 60.0,
            "First lockout after too many failed sign-in attempts.", _SERVER, unit="seconds", type_name="number"),
    Setting("server.auth.setup_link_ttl_s", number(60), 86_400.0,
            "Validity of the one-time setup link logged on a first start without users.", _SERVER, unit="seconds",
            type_name="number"),
    Setting("server.auth.local_login", parse_bool, True,
            "Allow signing in with a user name and password; false leaves single sign-on only (API tokens keep "
            "working).", _SERVER, type_name="bool"),
    Setting("server.auth.oidc.provider", choice("none", "generic", "google", "cognito", "azure"), "none",
            "Single sign-on provider: none, generic (any OpenID Connect issuer in server.auth.oidc.issuer), "
            "google, cognito or azure.", _SERVER, type_name="choice"),
    Setting("server.auth.oidc.issuer", parse_str, "",
            "Issuer URL of a generic provider; its discovery document is read from "
            "ISSUER/.well-known/openid-configuration.", _SERVER, type_name="url"),
    Setting("server.auth.oidc.cognito_region", parse_str, "",
            "AWS region of the Cognito user pool, such as eu-west-1 (provider cognito).", _SERVER),
    Setting("server.auth.oidc.cognito_user_pool_id", parse_str, "",
            "Id of the Cognito user pool, such as eu-west-1_AbCdEfGhI (provider cognito).", _SERVER),
    Setting("server.auth.oidc.azure_tenant_id", parse_str, "",
            "Directory (tenant) id of the Microsoft Entra ID tenant (provider azure).", _SERVER),
    Setting("server.auth.oidc.client_id", parse_str, "", "Client id registered with the provider.", _SERVER),
    Setting("server.auth.oidc.client_secret", parse_str, "",
            "Client secret registered with the provider; prefer the environment variable to a flag.", _SERVER,
            type_name="secret", secret=True),
    Setting("server.auth.oidc.scopes", string_list(), ["openid", "email", "profile"],
            "Scopes requested; openid is needed, email gives the address that links accounts.", _SERVER,
            type_name="list"),
    Setting("server.auth.oidc.display_name", parse_str, "",
            "Name on the sign-in button (Sign in with NAME); empty means the provider's name.", _SERVER),
    Setting("server.auth.oidc.role_claim", parse_str, "",
            "ID token claim whose values choose the role, such as groups, cognito:groups or roles; dots step into "
            "nested objects. Empty gives every user server.auth.oidc.default_role.", _SERVER),
    Setting("server.auth.oidc.role_map", role_mapping, {},
            "Claim values and the role each gives, as a mapping or value=role,value2=role2; the first listed value "
            "the user has wins. Roles are updated at every sign-in.", _SERVER, type_name="mapping"),
    Setting("server.auth.oidc.default_role", parse_str, "viewer",
            "Role of a user whose claim values match nothing in server.auth.oidc.role_map; empty refuses them.",
            _SERVER),
    Setting("server.auth.oidc.create_users", parse_bool, True,
            "Create an account at the first single sign-on of an unknown verified email; false signs in only users "
            "an admin created with that email.", _SERVER, type_name="bool"),
    Setting("server.auth.security_event_retention_days", number(1), 365.0,
            "Security events (sign-ins, failures, account, role and token changes) older than this are deleted, "
            "once at start and then daily.", _SERVER, unit="days", type_name="number"),
    Setting("store.retention_days", number(0.01), 15.0,
            "Samples older than this are deleted; samples older than this are also rejected at ingest.", _SERVER,
            unit="days", type_name="number"),

    Setting("store.chunk_cache_mb", integer(0, 1 << 20), 256,
            "Memory for decoded chunks of older samples, kept for repeated queries such as dashboards that "
            "refresh; 0 turns the cache off.", _SERVER, unit="MiB", type_name="integer"),
    Setting("store.metrics.backend", choice("embedded", "victoriametrics"), "embedded",
            "Where metrics live: the embedded DuckDB store, or VictoriaMetrics (remote write and its query API). "
            "Logs always stay in the embedded store.", _SERVER, type_name="choice"),
    Setting("store.metrics.victoriametrics_url", parse_str, "",
            "Base URL of VictoriaMetrics, for example http://127.0.0.1:8428; required with the victoriametrics "
            "backend.", _SERVER, type_name="url"),
    Setting("store.metrics.remote_write_queue_samples", integer(1000), 5_000_000,
            "Samples kept in memory for VictoriaMetrics while it is unreachable; the oldest are dropped beyond it.",
            _SERVER, unit="samples", type_name="integer"),

    # PromQL queries.
    Setting("query.timeout_s", number(0.1, 3600), 120.0, "Longest time one query may run.", _SERVER,
            unit="seconds", type_name="number"),
    Setting("query.max_samples", integer(1000), 50_000_000,
            "Most samples one query may hold in memory at once.", _SERVER, unit="samples", type_name="integer"),
    Setting("query.max_points_per_series", integer(10, 1_000_000), 11_000,
            "Most points a range query may return per series; a smaller step is rejected.", _SERVER,
            unit="points", type_name="integer"),
    Setting("query.lookback_delta_s", number(1, 86400), 300.0,
            "How far back an instant selector looks for the latest sample.", _SERVER, unit="seconds",
            type_name="number"),

    # Agent.
    Setting("agent.server", address(default_port=4317), None,
            "Address of the GoSight server's gRPC port; the port defaults to 4317.", _AGENT, alias="--server",
            type_name="host:port"),
    Setting("agent.interval_s", number(0.1, 3600), 10.0, "Time between two collections.", _AGENT,
            unit="seconds", alias="--interval", type_name="number"),
    Setting("agent.collectors", string_list(COLLECTOR_NAMES), list(COLLECTOR_NAMES),
            "Collectors to run, a list or a comma-separated string.", _AGENT, type_name="list"),
    Setting("agent.labels", label_map, {},
            "Labels added to every series and shown on the endpoint, as a mapping or name=value,name2=value2.",
            _AGENT, type_name="labels"),
    Setting("agent.hostname", parse_str, "", "Host name to report; empty means the operating system's host name.",
            _AGENT),
    Setting("agent.machine_id_file", parse_str, "",
            "File holding this machine's id (32 hexadecimal digits), from which the endpoint id is derived. Empty "
            "reads /etc/machine-id, then /var/lib/dbus/machine-id. Give machines cloned with one machine id a file "
            "each, with an id of their own.", _AGENT, type_name="path"),
    Setting("agent.heartbeat_s", number(1, 300), 10.0, "Time between two heartbeats on the control stream.",
            _AGENT, unit="seconds", type_name="number"),
    Setting("agent.spool.max_bytes", integer(1 << 20), 100 << 20,
            "Disk space for batches not yet accepted by the server; the oldest are dropped beyond it.", _AGENT,
            unit="bytes", type_name="integer"),
    Setting("agent.batch.max_samples", integer(100), 20_000,
            "Largest number of samples in one export request; bigger collections are split.", _AGENT,
            unit="samples", type_name="integer"),
    Setting("agent.send_timeout_s", number(0.1, 600), 15.0, "Deadline of one export request.", _AGENT,
            unit="seconds", type_name="number"),
    Setting("agent.backoff.initial_s", number(0.01, 600), 0.5,
            "First wait after a failed export; it doubles, with jitter, on every further failure.", _AGENT,
            unit="seconds", type_name="number"),
    Setting("agent.backoff.max_s", number(0.1, 3600), 30.0, "Longest wait between two export attempts.", _AGENT,
            unit="seconds", type_name="number"),
    Setting("agent.tls.enabled", parse_bool, False,
            "Connect to the server over TLS. Setting agent.tls.ca_file, agent.tls.ca_fingerprint or "
            "agent.tls.cert_file turns it on too. With none of them, gRPC's default roots are trusted (its bundled "
            "list, or the file named by GRPC_DEFAULT_SSL_ROOTS_FILE_PATH).", _AGENT,
            type_name="bool"),
    Setting("agent.tls.ca_file", parse_str, "",
            "PEM file with the CA certificate that signed the server's certificate (ca.crt from the server's "
            "TLS directory).", _AGENT, type_name="path"),
    Setting("agent.tls.ca_fingerprint", fingerprint, "",
            "SHA-256 fingerprint (sha256:<hex>) of the server's CA, as the server logs it at start: the agent "
            "reads the CA from the server's TLS handshake, accepts it only if it matches, and saves it in "
            "data_dir.", _AGENT, type_name="fingerprint"),
    Setting("agent.tls.cert_file", parse_str, "",
            "PEM file with this agent's client certificate (gosight certs issue), for servers that require one.",
            _AGENT, type_name="path"),
    Setting("agent.tls.key_file", parse_str, "", "PEM file with the private key of agent.tls.cert_file.",
            _AGENT, type_name="path"),
    Setting("agent.tls.server_name", parse_str, "",
            "Name to verify in the server's certificate, when agent.server uses an address or name the "
            "certificate does not carry.", _AGENT, type_name="string"),
    Setting("agent.token", parse_str, "",
            "Token sent on every call (gosight token create). Prefer agent.token_file or the environment: flags "
            "are visible to other users in the process list.", _AGENT, type_name="secret", secret=True),
    Setting("agent.token_file", parse_str, "",
            "File holding the agent token; keep it readable by the agent's user only (chmod 600).", _AGENT,
            type_name="path"),
    Setting("agent.filesystem.exclude_mountpoints", regex, DEFAULT_FS_EXCLUDE_MOUNTPOINTS,
            "Mount points matching this regular expression are not reported.", _AGENT, type_name="regex"),
    Setting("agent.filesystem.exclude_fstypes", regex, DEFAULT_FS_EXCLUDE_FSTYPES,
            "File system types matching this regular expression are not reported.", _AGENT, type_name="regex"),
    Setting("agent.disk.exclude_devices", regex, DEFAULT_DISK_EXCLUDE_DEVICES,
            "Block devices matching this regular expression are not reported (partitions by default).", _AGENT,
            type_name="regex"),
    Setting("agent.network.exclude_devices", regex, "",
            "Network devices matching this regular expression are not reported; empty reports all.", _AGENT,
            type_name="regex"),
    Setting("agent.containers.socket", engine_address, "",
            "Docker Engine API of Docker or Podman, as a socket path or a unix:// or tcp:// URL (without TLS). "
            "Empty finds it: DOCKER_HOST, then the first socket that exists of /var/run/docker.sock, "
            "/run/podman/podman.sock and $XDG_RUNTIME_DIR/podman/podman.sock.", _AGENT, type_name="address"),
    Setting("agent.containers.labels", string_list(), [],
            "Container labels copied onto the container's series as container_label_<name>, with characters "
            "other than letters, digits and underscores replaced by underscores; a list or a comma-separated "
            "string.", _AGENT, type_name="list"),
    Setting("agent.containers.timeout_s", number(0.1, 60), 5.0,
            "Deadline of one request to the container engine; a slower engine skips that container's "
            "statistics for one collection.", _AGENT, unit="seconds", type_name="number"),
)

BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}
REQUIRED: dict[str, str] = {"agent.server": "pass --server HOST[:PORT] or set agent.server in the config file"}


@dataclass
class Config:
    """Validated setting values of one role, with the source of each value."""

    values: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)
    role: str = SERVER
    # Problems worth a log line that do not stop the program.
    warnings: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    @property
    def data_dir(self) -> Path:
        return Path(self.values["data_dir"])


def settings_for(roles: Iterable[str]) -> list[Setting]:
    wanted = set(roles)
    return [setting for setting in SETTINGS if setting.roles & wanted]


def load_config(
    roles: Iterable[str],
    *,
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_path: str | os.PathLike[str] | None = None,
) -> Config:
    """Load and validate the settings of `roles`; raise ConfigError listing every problem."""
    roles = tuple(roles)
    env = os.environ if env is None else env
    flags = flags or {}
    problems: list[str] = []
    raw: dict[str, tuple[Any, str]] = {}

    path = config_path or env.get(CONFIG_ENV)
    if path:
        raw.update(_read_file(Path(path), problems))

    for setting in SETTINGS:
        if setting.env in env:
            raw[setting.name] = (env[setting.env], setting.env)
    warnings = _unknown_environment(env)
    for name, value in flags.items():
        if value is not None:
            raw[name] = (value, BY_NAME[name].flag)

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    wanted = settings_for(roles)
    for setting in wanted:
        if setting.name not in raw:
            values[setting.name] = _default(setting)
            sources[setting.name] = "default"
            continue
        value, source = raw[setting.name]
        try:
            values[setting.name] = setting.parse(value)
        except ValueError as error:
            shown = "(hidden)" if setting.secret else _show(value)
            problems.append(f"{setting.name}: invalid value {shown} from {source}: {error}")
            continue
        sources[setting.name] = source

    for name, hint in REQUIRED.items():
        setting = BY_NAME[name]
        if setting in wanted and values.get(name) in (None, "") and not any(name in line for line in problems):
            problems.append(f"{name}: missing: {hint}")

    problems.extend(_cross_checks(values))
    if problems:
        raise ConfigError(problems)
    return Config(values=values, sources=sources, role=roles[0] if roles else SERVER, warnings=warnings)


def _unknown_environment(env: Mapping[str, str]) -> list[str]:
    """Name GOSIGHT_* variables that set nothing, as a typo would; a file's unknown keys are errors instead.

    They stay warnings because one environment often serves several programs.
    """
    known = {setting.env for setting in SETTINGS} | {CONFIG_ENV}
    warnings = []
    for name in sorted(env):
        if name.startswith("GOSIGHT_") and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            warnings.append(f"ignoring the environment variable {name}: no setting reads it{hint}")
    return warnings


def _default(setting: Setting) -> Any:
    if setting.name == "data_dir":
        return default_data_dir()
    if isinstance(setting.default, (list, dict)):
        return type(setting.default)(setting.default)
    return setting.default


def _cross_checks(values: Mapping[str, Any]) -> list[str]:
    problems = _security_checks(values) + _auth_checks(values)
    idle = values.get("server.presence.idle_after_s")
    offline = values.get("server.presence.offline_after_s")
    if idle is not None and offline is not None and offline <= idle:
        problems.append(
            f"server.presence.offline_after_s: invalid value {offline}: must be greater than "
            f"server.presence.idle_after_s ({idle})"
        )
    if values.get("store.metrics.backend") == "victoriametrics" and not values.get(
            "store.metrics.victoriametrics_url"):
        problems.append("store.metrics.victoriametrics_url: missing: the victoriametrics backend needs the URL "
                        "of VictoriaMetrics, for example http://127.0.0.1:8428")
    url = values.get("store.metrics.victoriametrics_url")
    if url and not re.match(r"^https?://[^/\s]+", url):
        problems.append(f"store.metrics.victoriametrics_url: invalid value {url!r}: expected an http:// or "
                        "https:// URL, for example http://127.0.0.1:8428")
    reserved = sorted(set(values.get("agent.labels") or {}) & set(IDENTITY_LABELS))
    if reserved:
        problems.append(f"agent.labels: invalid label names {', '.join(reserved)}: these identity labels are set "
                        "by GoSight; choose other names")
    initial = values.get("agent.backoff.initial_s")
    longest = values.get("agent.backoff.max_s")
    if initial is not None and longest is not None and longest < initial:
        problems.append(
            f"agent.backoff.max_s: invalid value {longest:g}: must be at least agent.backoff.initial_s ({initial:g})"
        )
    return problems


def _security_checks(values: Mapping[str, Any]) -> list[str]:
    problems = []
    pairs = (("server.tls.cert_file", "server.tls.key_file"), ("agent.tls.cert_file", "agent.tls.key_file"))
    for first, second in pairs:
        if bool(values.get(first)) != bool(values.get(second)):
            given, missing = (first, second) if values.get(first) else (second, first)
            problems.append(f"{missing}: missing: {given} is set, and the two go together")
    if values.get("server.tls.enabled") is False:
        for name in ("server.tls.cert_file", "server.tls.key_file", "server.tls.client_ca_file"):
            if values.get(name):
                problems.append(f"{name}: set while server.tls.enabled is false; set server.tls.enabled true "
                                f"(--server.tls.enabled true) or remove {name}")
        if values.get("server.tls.client_auth") == "require":
            problems.append("server.tls.client_auth: invalid value 'require': client certificates need TLS; set "
                            "server.tls.enabled true")
    if values.get("server.tls.client_ca_file") and values.get("server.tls.client_auth") == "none":
        problems.append("server.tls.client_ca_file: set while server.tls.client_auth is none; set "
                        "server.tls.client_auth require to check client certificates")
    if values.get("agent.token") and values.get("agent.token_file"):
        problems.append("agent.token: set together with agent.token_file; keep only one of them")
    if values.get("agent.tls.ca_file") and values.get("agent.tls.ca_fingerprint"):
        problems.append("agent.tls.ca_fingerprint: set together with agent.tls.ca_file; the CA file is trusted as "
                        "is, so keep only one of them")
    return problems


def _auth_checks(values: Mapping[str, Any]) -> list[str]:
    problems = []
    provider = values.get("server.auth.oidc.provider")
    required = {"generic": ["server.auth.oidc.issuer"], "google": [],
                "cognito": ["server.auth.oidc.cognito_region", "server.auth.oidc.cognito_user_pool_id"],
                "azure": ["server.auth.oidc.azure_tenant_id"]}.get(provider or "none")
    if required is not None:
        for name in [*required, "server.auth.oidc.client_id", "server.auth.oidc.client_secret"]:
            if not values.get(name):
                problems.append(f"{name}: missing: server.auth.oidc.provider {provider} needs it")
        issuer = values.get("server.auth.oidc.issuer", "")
        if provider == "generic" and issuer and not re.match(r"^https?://[^/\s]+", issuer):
            problems.append(f"server.auth.oidc.issuer: invalid value {issuer!r}: expected an https:// URL")
    if values.get("server.auth.local_login") is False and provider in (None, "none"):
        problems.append("server.auth.local_login: false leaves no way to sign in; configure "
                        "server.auth.oidc.provider or set it to true")
    url = values.get("server.auth.public_url")
    if url and not re.match(r"^https?://[^/\s]+/?$", url):
        problems.append(f"server.auth.public_url: invalid value {url!r}: expected a scheme and host such as "
                        "https://metrics.example.com, without a path")
    idle, longest = values.get("server.auth.session_idle_timeout_s"), values.get("server.auth.session_max_age_s")
    if idle is not None and longest is not None and idle > longest:
        problems.append(f"server.auth.session_idle_timeout_s: invalid value {idle:g}: must be at most "
                        f"server.auth.session_max_age_s ({longest:g})")
    return problems


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping, where the last would silently win."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice; keep one", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_file(path: Path, problems: list[str]) -> dict[str, tuple[Any, str]]:
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506 - a safe loader
    except FileNotFoundError:
        problems.append(f"config file {path}: not found; check the path given with --config or {CONFIG_ENV}")
        return {}
    except (OSError, UnicodeDecodeError) as error:
        problems.append(f"config file {path}: cannot be read: {error}")
        return {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None)
        if mark is not None and problem:
            problems.append(f"config file {path}: invalid YAML at line {mark.line + 1}, column {mark.column + 1}: "
                            f"{problem}")
        else:
            problems.append(f"config file {path}: invalid YAML: {error}".replace("\n", " "))
        return {}
    if document is None:
        return {}
    if not isinstance(document, dict):
        problems.append(f"config file {path}: expected a mapping of settings at the top level")
        return {}
    found: dict[str, tuple[Any, str]] = {}
    _flatten(document, "", path, found, problems)
    return found


def _flatten(node: dict, prefix: str, path: Path, found: dict, problems: list[str]) -> None:
    for key, value in node.items():
        name = f"{prefix}{key}"
        if name in BY_NAME:
            found[name] = (value, str(path))
        elif isinstance(value, dict) and any(known.startswith(name + ".") for known in BY_NAME):
            _flatten(value, name + ".", path, found, problems)
        elif value is None and any(known.startswith(name + ".") for known in BY_NAME):
            # A section with every setting commented out, such as `server:` alone.
            continue
        else:
            hint = difflib.get_close_matches(name, BY_NAME, n=1)
            suggestion = f"; did you mean {hint[0]}?" if hint else "; run 'gosight check-config --list' for all"
            problems.append(f"{name}: unknown setting in {path}{suggestion}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def describe_settings_markdown() -> str:
    """Render the settings reference as a Markdown table, the source of docs/configuration.md."""
    lines = [
        "| Setting | Role | Type | Default | Unit | Environment | Description |",
        "|---|---|---|---|---|---|---|",
    ]
    for setting in SETTINGS:
        roles = "both" if setting.roles == BOTH else ", ".join(sorted(setting.roles))
        default = _default_text(setting)
        flag = setting.flag + (f" (or {setting.alias})" if setting.alias else "")
        lines.append(
            f"| `{setting.name}` `{flag}` | {roles} | {setting.type_name} | {default} | {setting.unit or ''} "
            f"| `{setting.env}` | {setting.help} |"
        )
    return "\n".join(lines) + "\n"


def _default_text(setting: Setting) -> str:
    if setting.name == "data_dir":
        return "see description"
    if setting.default is None:
        return "required" if setting.name in REQUIRED else "none"
    if isinstance(setting.default, list):
        return "`" + ",".join(setting.default) + "`" if setting.default else "empty"
    if isinstance(setting.default, dict):
        return "none"
    if setting.default == "":
        return "empty"
    text = str(setting.default).replace("|", "\\|")
    return f"`{text}`"
