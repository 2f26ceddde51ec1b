"""Size, free space and inodes of every mounted file system, as node_exporter reports them."""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import NamedTuple

import psutil

from gosight.agent.collectors import procfs
from gosight.agent.collectors.base import Sample
from gosight.config import Config

log = logging.getLogger(__name__)

# node_exporter's default --collector.filesystem.mount-timeout.
MOUNT_TIMEOUT_S = 5.0


class Mount(NamedTuple):
    device: str
    mountpoint: str
    fstype: str
    options: tuple[str, ...]


class FsUsage(NamedTuple):
    """Space in bytes and inode counts of one file system. Inode counts are None where the OS has none."""

    size: float
    free: float
    avail: float
    files: float | None
    files_free: float | None


def read_mounts() -> list[Mount]:
    """Return the mount table of this process, in the kernel's order."""
    if not procfs.IS_LINUX:
        return [
            Mount(part.device, part.mountpoint, part.fstype, tuple(part.opts.split(",")))
            for part in psutil.disk_partitions(all=True)
        ]
    # node_exporter reads /proc/1/mounts. This process's own table is read instead,
    # so that every mount point given to statfs resolves in the mount namespace it
    # comes from. On a host without containers the two tables are the same.
    mounts = []
    with open(procfs.PROC + "/self/mounts", "rb") as file:
        for line in file:
            fields = line.decode("utf-8", "surrogateescape").split()
            if len(fields) < 4:
                continue
            device, mountpoint, fstype, options = fields[:4]
            mounts.append(Mount(device, unescape_octal(mountpoint), fstype, tuple(options.split(","))))
    return mounts


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def unescape_octal(text: str) -> str:
    # The kernel writes space, tab, newline and backslash in mount points as \040,
    # \011, \012 and \134 (see fstab(5)).
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), text)


def statfs(path: str) -> FsUsage:
    """Return the usage of the file system mounted at `path`, or raise OSError."""
    if not hasattr(os, "statvfs"):
        usage = psutil.disk_usage(path)
        return FsUsage(usage.total, usage.free, usage.free, None, None)
    result = os.statvfs(path)
    # node_exporter multiplies the block counts by statfs(2)'s f_bsize on Linux, which
    # statvfs passes through as f_bsize. Elsewhere statvfs's f_bsize is the preferred
    # I/O size and f_frsize is the unit of the counts.
    block = result.f_bsize if procfs.IS_LINUX else result.f_frsize
    return FsUsage(
        float(result.f_blocks * block),
        float(result.f_bfree * block),
        float(result.f_bavail * block),
        float(result.f_files),
        float(result.f_ffree),
    )


class FilesystemCollector:
    name = "filesystem"

    def __init__(
        self,
        config: Config,
        *,
        statfs: Callable[[str], FsUsage] = statfs,
        read_mounts: Callable[[], list[Mount]] = read_mounts,
        timeout_s: float = MOUNT_TIMEOUT_S,
    ) -> None:
        self._exclude_mountpoints = procfs.compile_exclude(config["agent.filesystem.exclude_mountpoints"])
        self._exclude_fstypes = procfs.compile_exclude(config["agent.filesystem.exclude_fstypes"])
        self._read_mounts = read_mounts
        self._timeout_s = timeout_s
        self._worker = StatfsWorker(statfs)
        # Mount points whose statfs call timed out, with that call. They are skipped
        # until the call returns, so a hung mount occupies at most one thread.
        self._hung: dict[str, Future[FsUsage]] = {}
        self._failing: set[str] = set()

    def collect(self) -> Iterator[Sample]:
        mounts = self._select_mounts(self._read_mounts())
        self._forget_recovered_mounts()

        calls = {
            mount: self._worker.submit(mount.mountpoint) for mount in mounts if mount.mountpoint not in self._hung
        }
        deadline = time.monotonic() + self._timeout_s
        for mount in mounts:
            labels = {"device": mount.device, "fstype": mount.fstype, "mountpoint": mount.mountpoint}
            readonly = 1.0 if "ro" in mount.options else 0.0
            future = calls.get(mount)
            usage = None
            if future is not None:
                usage = self._wait(mount, future, deadline)
                if mount.mountpoint in self._hung:
                    # The calls queued behind the hung one start only now, on a new
                    # thread, so they get a full timeout of their own.
                    deadline = time.monotonic() + self._timeout_s

            yield Sample("node_filesystem_device_error", labels, 1.0 if usage is None else 0.0)
            yield Sample("node_filesystem_readonly", labels, readonly)
            if usage is None:
                continue
            yield Sample("node_filesystem_size_bytes", labels, usage.size)
            yield Sample("node_filesystem_free_bytes", labels, usage.free)
            yield Sample("node_filesystem_avail_bytes", labels, usage.avail)
            if usage.files is not None:
                yield Sample("node_filesystem_files", labels, usage.files)
            if usage.files_free is not None:
                yield Sample("node_filesystem_files_free", labels, usage.files_free)

    def _select_mounts(self, mounts: list[Mount]) -> list[Mount]:
        selected = []
        seen = set()
        for mount in mounts:
            if procfs.is_excluded(self._exclude_mountpoints, mount.mountpoint):
                continue
            if procfs.is_excluded(self._exclude_fstypes, mount.fstype):
                continue
            # A file system mounted twice at the same place (over itself, as bind
            # mounts often are) would give two series with the same labels.
            key = (mount.device, mount.fstype, mount.mountpoint)
            if key in seen:
                continue
            seen.add(key)
            selected.append(mount)
        return selected

    def _forget_recovered_mounts(self) -> None:
        for mountpoint, future in list(self._hung.items()):
            if future.done():
                del self._hung[mountpoint]
                log.info("statfs returned again; reporting the mount point",
                         extra={"fields": {"mountpoint": mountpoint}})

    def _wait(self, mount: Mount, future: Future[FsUsage], deadline: float) -> FsUsage | None:
        """Return the usage, or None after logging why it is missing."""
        try:
            usage = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            if self._worker.abandon(future):
                self._hung[mount.mountpoint] = future
                log.warning(
                    "statfs timed out; skipping the mount point until the call returns",
                    extra={"fields": {"mountpoint": mount.mountpoint, "timeout_s": self._timeout_s}},
                )
            return None
        except OSError as error:
            if mount.mountpoint not in self._failing:
                self._failing.add(mount.mountpoint)
                log.warning("statfs failed", extra={"fields": {"mountpoint": mount.mountpoint, "error": str(error)}})
            return None
        self._failing.discard(mount.mountpoint)
        return usage


class StatfsWorker:
    """Runs statfs calls on a daemon thread, and hands the queue to a new thread when one hangs.

    A statfs on a dead network mount can block in the kernel for good, and nothing can
    interrupt it. Daemon threads are used because ThreadPoolExecutor joins its threads
    when the interpreter exits, which would hang the agent's shutdown on such a call.
    Calls are served in the order submitted. `abandon` on a running call starts a new
    thread for the rest of the queue; the abandoned thread exits when its call returns.
    """

    def __init__(self, statfs: Callable[[str], FsUsage]) -> None:
        self._statfs = statfs
        self._queue: queue.SimpleQueue[tuple[Future[FsUsage], str]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running: set[Future[FsUsage]] = set()
        self._abandoned: set[Future[FsUsage]] = set()
        self._started = False

    def submit(self, path: str) -> Future[FsUsage]:
        future: Future[FsUsage] = Future()
        with self._lock:
            if not self._started:
                self._started = True
                self._start_thread()
        self._queue.put((future, path))
        return future

    def abandon(self, future: Future[FsUsage]) -> bool:
        """Stop waiting for a call; return True when it was still running, so it hangs."""
        with self._lock:
            if future not in self._running:
                # Still queued, or finished a moment ago.
                future.cancel()
                return False
            self._abandoned.add(future)
            self._start_thread()
        return True

    def _start_thread(self) -> None:
        threading.Thread(target=self._serve, name="gosight-statfs", daemon=True).start()

    def _serve(self) -> None:
        while True:
            future, path = self._queue.get()
            with self._lock:
                if not future.set_running_or_notify_cancel():
                    continue
                self._running.add(future)

            error: BaseException | None = None
            try:
                usage = self._statfs(path)
            except Exception as caught:  # any failure is reported through the future
                error = caught

            with self._lock:
                self._running.discard(future)
                abandoned = future in self._abandoned
                self._abandoned.discard(future)
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(usage)
            if abandoned:
                return
