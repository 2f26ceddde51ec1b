"""A private Podman for tests: its own storage, a Docker Engine API socket, a busybox image.

Everything lives in one temporary directory: image and container storage (--root),
run state (--runroot), temporary files and the API socket, so tests never touch the
machine's default storage. Containers run with runc and the cgroupfs manager, which
work without systemd, and with slirp4netns networking, which adds no bridge or
firewall rule on the host. No image is ever pulled: the image is a tarball of
Debian's static busybox with a few command links, imported under LOCAL_IMAGE.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PODMAN = shutil.which("podman") or "/usr/bin/podman"
BUSYBOX = "/bin/busybox"
LOCAL_IMAGE = "localhost/gosight-busybox:test"
# Limits the container runtime needs where the defaults exceed what the machine allows,
# and user-mode networking, which needs no bridge or firewall rules on the host.
RUN_OPTIONS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "slirp4netns")
BUSYBOX_COMMANDS = ("sh", "sleep", "cat", "true", "dd", "yes", "head", "ls", "echo", "kill", "rm")


def missing_requirements() -> str | None:
    """Return why Podman tests cannot run here, or None when they can."""
    if not os.path.exists(PODMAN):
        return "podman is not installed (apt-get install podman runc, or build/setup.sh)"
    if not shutil.which("runc"):
        return "runc is not installed (apt-get install runc)"
    if not shutil.which("slirp4netns"):
        return "slirp4netns is not installed (apt-get install slirp4netns)"
    if not os.path.exists(BUSYBOX):
        return "busybox is not installed at /bin/busybox (apt-get install busybox-static)"
    if os.geteuid() != 0:
        return "the Podman tests need root, for rootful containers with a private storage directory"
    return None


@dataclass
class Podman:
    """A Podman API service on a socket in `directory`, with commands against the same storage."""

    directory: Path
    service: subprocess.Popen | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.directory / "service.log"

    @property
    def socket(self) -> Path:
        return self.directory / "podman.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def global_flags(self) -> list[str]:
        return ["--root", str(self.directory / "root"), "--runroot", str(self.directory / "run"),
                "--tmpdir", str(self.directory / "tmp"), "--runtime", "runc", "--cgroup-manager", "cgroupfs",
                "--events-backend", "file"]

    def run(self, *args: str, check: bool = True, timeout_s: float = 120.0) -> str:
        """Run a podman command against this storage and return its output."""
        result = subprocess.run([PODMAN, *self.global_flags(), *args], capture_output=True, text=True,
                                timeout=timeout_s, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed with {result.returncode}: {result.stderr}")
        return result.stdout.strip()

    def inspect(self, name: str) -> dict:
        return json.loads(self.run("inspect", "--type", "container", name))[0]

    def start_service(self) -> None:
        """Start the API service and wait until it responds on the socket."""
        for name in ("root", "run", "tmp"):
            (self.directory / name).mkdir(exist_ok=True)
        log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed when the service stops
        self.service = subprocess.Popen([PODMAN, *self.global_flags(), "system", "service", "--time=0", self.url],
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            if self.service.poll() is not None:
                raise AssertionError(f"podman system service exited with {self.service.returncode}: "
                                     f"{self.log_path.read_text()}")
            if self.ping():
                return
            time.sleep(0.05)
        raise AssertionError(f"podman system service did not respond on {self.socket} within 30 s")

    def stop_service(self) -> None:
        """Stop the API service; the containers keep running, as they do when a real engine restarts."""
        if self.service is None:
            return
        if self.service.poll() is None:
            self.service.send_signal(signal.SIGTERM)
            try:
                self.service.wait(20)
            except subprocess.TimeoutExpired:
                self.service.kill()
                self.service.wait()
        self.service = None
        if self.socket.exists():
            self.socket.unlink()

    def ping(self) -> bool:
        if not self.socket.exists():
            return False
        transport = httpx.HTTPTransport(uds=str(self.socket))
        try:
            with httpx.Client(transport=transport, timeout=2.0) as client:
                return client.get("http://podman/_ping").status_code == 200
        except httpx.TransportError:
            return False

    def import_busybox(self) -> str:
        """Import the busybox image from a tarball built here; return its name."""
        rootfs = self.directory / "busybox-root"
        (rootfs / "bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
        for command in BUSYBOX_COMMANDS:
            link = rootfs / "bin" / command
            if not link.exists():
                link.symlink_to("busybox")
        tarball = self.directory / "busybox.tar"
        with tarfile.open(tarball, "w") as archive:
            archive.add(rootfs, arcname=".")
        self.run("import", str(tarball), LOCAL_IMAGE)
        return LOCAL_IMAGE

    def start_container(self, name: str, *options: str, command: tuple[str, ...] = ("sleep", "100000")) -> str:
        """Run a detached container from the busybox image; return its full id."""
        return self.run("run", "-d", "--name", name, *RUN_OPTIONS, *options, LOCAL_IMAGE, *command)

    def create_container(self, name: str, *options: str, command: tuple[str, ...] = ("sleep", "100000")) -> str:
        return self.run("create", "--name", name, *RUN_OPTIONS, *options, LOCAL_IMAGE, *command)

    def close(self) -> None:
        """Remove every container and image, stop the service and delete the directory."""
        try:
            self.run("rm", "--all", "--force", "--time", "0", check=False, timeout_s=300.0)
            self.run("rmi", "--all", "--force", check=False)
        finally:
            # Not "podman system reset": it would also delete the machine's networks,
            # which live outside this directory.
            self.stop_service()
            self._wait_for_helpers()
            self._unmount_all()
            shutil.rmtree(self.directory, ignore_errors=True)

    def _wait_for_helpers(self, timeout_s: float = 15.0) -> None:
        """Wait for processes that use this storage, such as conmon's cleanup commands, to exit."""
        deadline = time.monotonic() + timeout_s
        while self._helper_pids() and time.monotonic() < deadline:
            time.sleep(0.1)

    def _helper_pids(self) -> list[int]:
        marker = str(self.directory).encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in command:
                pids.append(int(entry.name))
        return pids

    def _unmount_all(self) -> None:
        """Unmount what the storage driver mounted inside the directory, deepest first."""
        prefix = str(self.directory) + "/"
        with open("/proc/self/mountinfo", encoding="utf-8") as file:
            targets = [line.split()[4] for line in file]
        for target in sorted((item for item in targets if item.startswith(prefix)), key=len, reverse=True):
            subprocess.run(["umount", target], capture_output=True, check=False)


def start_podman() -> Podman:
    """Create a private Podman with the busybox image and a running API service."""
    # Socket paths are limited to 108 bytes, so the directory stays short, under /tmp.
    directory = Path(tempfile.mkdtemp(prefix="gosight-podman-", dir="/tmp"))
    podman = Podman(directory)
    try:
        podman.start_service()
        podman.import_busybox()
    except BaseException:
        podman.close()
        raise
    return podman
