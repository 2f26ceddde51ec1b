"""Run a real VictoriaMetrics single-node binary on a loopback port for tests and benchmarks."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.processes import free_port, wait_for

BINARY_NAMES = ("victoria-metrics", "victoria-metrics-prod")


def find_binary() -> str | None:
    """Return the path of the VictoriaMetrics binary (Debian's package installs /usr/bin/victoria-metrics)."""
    for name in BINARY_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class VictoriaMetrics:
    """One VictoriaMetrics process; `start` may be called again after `stop` on the same port and data."""

    binary: str
    data_dir: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> VictoriaMetrics:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the process owns the file until it exits
        self.process = subprocess.Popen(
            [self.binary, f"-httpListenAddr=127.0.0.1:{self.port}", f"-storageDataPath={self.data_dir}",
             "-retentionPeriod=100y", "-loggerLevel=WARN", *self.extra_args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        wait_for(self._healthy, timeout_s=30, message=f"VictoriaMetrics on {self.url}; log: {self.log_path}")
        return self

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"VictoriaMetrics exited with {self.process.returncode}; log:\n"
                                 f"{self.log_path.read_text(errors='replace')}")
        return httpx.get(self.url + "/health", timeout=2).text.strip() == "OK"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def flush(self) -> None:
        """Make every accepted sample searchable now rather than within a second or so."""
        response = httpx.get(self.url + "/internal/force_flush", timeout=30)
        response.raise_for_status()

    def export(self, selector: str) -> list[dict]:
        """Return the raw samples of matching series from /api/v1/export, one dict per series."""
        response = httpx.post(self.url + "/api/v1/export", data={"match[]": selector}, timeout=60)
        response.raise_for_status()
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]
