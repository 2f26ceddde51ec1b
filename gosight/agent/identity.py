"""Who this agent is: a persistent agent id, the host id and the host's facts."""

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

_MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")
_AGENT_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


@dataclass
class Identity:
    agent_id: str
    host_id: str
    endpoint_id: str
    hostname: str
    labels: dict[str, str] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)
    boot_time_ms: int = 0

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


def load_identity(data_dir: Path, hostname: str = "", labels: dict[str, str] | None = None) -> Identity:
    """Read or create the agent id in `data_dir` and gather the host's facts."""
    agent_id = ensure_agent_id(data_dir / "agent_id")
    host_id = read_machine_id() or agent_id
    facts = host_facts()
    return Identity(
        agent_id=agent_id,
        host_id=host_id,
        endpoint_id="host-" + host_id[:12],
        hostname=hostname or socket.gethostname(),
        labels=dict(labels or {}),
        facts=facts,
        boot_time_ms=int(psutil.boot_time() * 1000),
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


def read_machine_id() -> str:
    for candidate in _MACHINE_ID_FILES:
        try:
            text = Path(candidate).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if re.fullmatch(r"[0-9a-fA-F]{32}", text):
            return text.lower()
    return ""


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
