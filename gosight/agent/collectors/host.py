"""Boot time, clock, kernel and operating system identity of the host, and the agent's version."""

from __future__ import annotations

import os
import platform
import re
import shlex
import time
from collections.abc import Iterator
from typing import NamedTuple

import psutil

from gosight import __version__
from gosight.agent.collectors import procfs
from gosight.agent.collectors.base import Sample
from gosight.config import Config

OS_RELEASE_PATHS = ("/etc/os-release", "/usr/lib/os-release")

# os-release keys reported as node_os_info labels, under node_exporter's label names.
OS_INFO_LABELS = (
    ("build_id", "BUILD_ID"),
    ("id", "ID"),
    ("id_like", "ID_LIKE"),
    ("image_id", "IMAGE_ID"),
    ("image_version", "IMAGE_VERSION"),
    ("name", "NAME"),
    ("pretty_name", "PRETTY_NAME"),
    ("variant", "VARIANT"),
    ("variant_id", "VARIANT_ID"),
    ("version", "VERSION"),
    ("version_codename", "VERSION_CODENAME"),
    ("version_id", "VERSION_ID"),
)

_MAJOR_MINOR = re.compile(r"^[0-9]+\.?[0-9]*")


class HostCollector:
    name = "host"

    def __init__(self, config: Config) -> None:
        # agent.hostname also replaces the nodename label, because dashboards made for
        # node_exporter take the host's name from node_uname_info.
        self._hostname = config["agent.hostname"]
        self._os_release = OsReleaseReader()

    def collect(self) -> Iterator[Sample]:
        yield Sample("node_boot_time_seconds", {}, psutil.boot_time())
        yield Sample("node_time_seconds", {}, time.time())
        yield Sample("node_uname_info", self._uname_labels(), 1.0)

        release = self._os_release.read()
        if release is not None:
            yield Sample("node_os_info", {label: release.get(key, "") for label, key in OS_INFO_LABELS}, 1.0)
            version = os_version_number(release.get("VERSION_ID", ""))
            # node_exporter leaves node_os_version out when VERSION_ID has no number.
            if version > 0:
                labels = {"id": release.get("ID", ""), "id_like": release.get("ID_LIKE", ""),
                          "name": release.get("NAME", "")}
                yield Sample("node_os_version", labels, version)

        yield Sample("gosight_agent_info", {"version": __version__}, 1.0)

    def _uname_labels(self) -> dict[str, str]:
        # os.uname is called on every collection because the host name can change at
        # run time, while platform.uname caches its first result. Windows has only
        # platform.uname.
        if hasattr(os, "uname"):
            sysname, nodename, release, version, machine = os.uname()
        else:
            uname = platform.uname()
            sysname, nodename, release, version, machine = (
                uname.system, uname.node, uname.release, uname.version, uname.machine
            )
        return {
            "sysname": sysname,
            "release": release,
            "version": version,
            "machine": machine,
            "nodename": self._hostname or nodename,
            "domainname": read_domainname(),
        }


def read_domainname() -> str:
    """Return the NIS domain name of uname(2), "(none)" when unset as the kernel writes it.

    Python's os.uname leaves this field out, so it is read from /proc on Linux and is
    empty elsewhere.
    """
    if not procfs.IS_LINUX:
        return ""
    try:
        with open(procfs.PROC + "/sys/kernel/domainname", encoding="utf-8", errors="replace") as file:
            return file.read().strip()
    except OSError:
        return ""


def os_version_number(version_id: str) -> float:
    """Return the major.minor part of an os-release VERSION_ID as a number, 0 when it has none."""
    match = _MAJOR_MINOR.match(version_id)
    return float(match.group()) if match else 0.0


class _CachedRelease(NamedTuple):
    path: str
    mtime_ns: int
    values: dict[str, str]


class OsReleaseReader:
    """Reads os-release, parsing it again only when its modification time changes."""

    def __init__(self, paths: tuple[str, ...] = OS_RELEASE_PATHS) -> None:
        self._paths = paths
        self._cached: _CachedRelease | None = None

    def read(self) -> dict[str, str] | None:
        """Return the key-value pairs of the first os-release file found, or None when there is none."""
        for path in self._paths:
            try:
                mtime_ns = os.stat(path).st_mtime_ns
            except OSError:
                continue
            cached = self._cached
            if cached is not None and cached.path == path and cached.mtime_ns == mtime_ns:
                return cached.values
            try:
                with open(path, encoding="utf-8", errors="replace") as file:
                    values = parse_os_release(file.read())
            except OSError:
                continue
            self._cached = _CachedRelease(path, mtime_ns, values)
            return values
        return None


def parse_os_release(text: str) -> dict[str, str]:
    """Parse os-release(5) text: KEY=value lines with shell-style quoting and # comments."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, separator, raw = line.partition("=")
        if not separator:
            continue
        try:
            value = " ".join(shlex.split(raw))
        except ValueError:
            # An unbalanced quote; keep the text rather than drop the key.
            value = raw.strip("\"'")
        values[key.strip()] = value
    return values
