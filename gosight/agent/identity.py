"""The agent's identity: a persistent agent id, the host id and the host's facts.

The endpoint id is `host-` and the first 12 characters of the machine id, so it
survives a reinstall of the agent. Machines cloned from one image share their
machine id, and the server then stores the second agent's data under an endpoint
id of its own (see gosight/server/endpoints.py).
"""

from __future__ import annotations

import os
import platform
import re
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from gosight import __version__

MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")
_MACHINE_ID_RE = re.compile(r"[0-9a-fA-F]{32}")
_AGENT_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class IdentityError(Exception):
    """Raised when agent.machine_id_file cannot be read or contains no machine id."""


@dataclass
class Identity:
    agent_id: str
    host_id: str
    endpoint_id: str
    hostname: str
    labels: dict[str, str] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)
    boot_time_ms: int = 0
    # The file the machine id came from; empty when none was found, so host_id is the agent id.
    machine_id_file: str = ""

    def resource(self) -> dict[str, str]:
        """OTLP resource attributes naming this endpoint; labels travel as gosight.label.<name>."""
        attributes = {
            "service.name": "gosight-agent",
            "service.version": __version__,
            "service.instance.id": self.hostname,
            "host.name": self.hostname,
            "host.id": self.host_id,
            "host.arch": self.facts.get("arch", ""),
            "os.type": self.facts.get("os", ""),
            "os.description": self.facts.get("os_version", ""),
            "gosight.agent.id": self.agent_id,
            "gosight.endpoint.id": self.endpoint_id,
        }
        attributes.update({f"gosight.label.{name}": value for name, value in self.labels.items()})
        return attributes


def load_identity(data_dir: Path, hostname: str = "", labels: dict[str, str] | None = None,
                  machine_id_file: str = "") -> Identity:
    """Read or create the agent id in `data_dir` and gather the host's facts.

    `machine_id_file` replaces the system's machine id files. IdentityError is raised
    when it is set but cannot be read or contains no machine id.
    """
    agent_id = ensure_agent_id(data_dir / "agent_id")
    if machine_id_file:
        machine_id, source = read_machine_id_file(Path(machine_id_file)), machine_id_file
    else:
        machine_id, source = read_machine_id()
    host_id = machine_id or agent_id
    facts = host_facts()
    return Identity(
        agent_id=agent_id,
        host_id=host_id,
        endpoint_id="host-" + host_id[:12],
        hostname=hostname or socket.gethostname(),
        labels=dict(labels or {}),
        facts=facts,
        boot_time_ms=int(psutil.boot_time() * 1000),
        machine_id_file=source,
    )


def ensure_agent_id(path: Path) -> str:
    """Return the agent id stored at `path`, creating it (mode 0600) on first use."""
    try:
        existing = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        existing = ""
    if existing and _AGENT_ID_RE.match(existing):
        return existing
    agent_id = uuid.uuid4().hex
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(agent_id + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return agent_id


def read_machine_id(candidates: tuple[str, ...] = MACHINE_ID_FILES) -> tuple[str, str]:
    """Return the first valid machine id among `candidates` and its file, or two empty strings."""
    for candidate in candidates:
        try:
            text = Path(candidate).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if _MACHINE_ID_RE.fullmatch(text):
            return text.lower(), candidate
    return "", ""


def read_machine_id_file(path: Path) -> str:
    """Return the machine id in `path`, the file named by agent.machine_id_file."""
    expected = "expected 32 hexadecimal digits, as in /etc/machine-id; systemd-id128 new prints a new one"
    try:
        text = path.read_text(encoding="ascii").strip()
    except OSError as error:
        raise IdentityError(f"agent.machine_id_file: cannot read {path}: {error.strerror or error}; point it at a "
                            "file holding a machine id, or leave it empty to read /etc/machine-id") from None
    except UnicodeDecodeError:
        raise IdentityError(f"agent.machine_id_file: invalid machine id in {path}: the file is not ASCII text; "
                            f"{expected}") from None
    if not _MACHINE_ID_RE.fullmatch(text):
        raise IdentityError(f"agent.machine_id_file: invalid machine id {text[:40]!r} in {path}: {expected}")
    return text.lower()


def host_facts() -> dict[str, str]:
    release = _os_release()
    return {
        "os": platform.system().lower(),
        "os_version": release.get("PRETTY_NAME", platform.platform()),
        "platform": release.get("ID", ""),
        "kernel_version": platform.release(),
        "arch": platform.machine(),
    }


def _os_release() -> dict[str, str]:
    for candidate in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            lines = Path(candidate).read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        values = {}
        for line in lines:
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip().strip('"')
        return values
    return {}
