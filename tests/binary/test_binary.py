"""The single-file executable: version, a smoke run on loopback, and the same run air-gapped."""

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.binary.smoke import run_smoke

REPO = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("GOSIGHT_BINARY", REPO / "dist" / "gosight"))

pytestmark = pytest.mark.skipif(not BINARY.exists(), reason=f"{BINARY} not built; run build/build-binary.sh")


def check_smoke(result: dict) -> None:
    assert result["memtotal"] == result["memtotal_expected"], result
    assert result["index_status"] == 200, result
    assert result["assets"], "index.html names no /assets/ file"
    assert result["asset_status"] == 200, result
    assert "immutable" in result["asset_cache"], result
    assert result["view_status"] == 200, "a client-side view must load the app"
    assert result["agent_exit"] == 0, result
    assert result["server_exit"] == 0, result
    assert result["drained"] is True, result
    assert result["tracebacks"] == 0, result


def test_binary_version():
    result = subprocess.run([str(BINARY), "version"], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("gosight 0."), result.stdout


def test_binary_server_and_agent(tmp_path: Path):
    result = run_smoke(BINARY, tmp_path)

    check_smoke(result)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root and iproute2 for ip netns")
def test_binary_air_gapped(tmp_path: Path):
    namespace = f"gosight-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up"], check=True)
        routes = subprocess.run(["ip", "netns", "exec", namespace, "ip", "route", "show"], capture_output=True,
                                text=True, check=True).stdout
        links = subprocess.run(["ip", "netns", "exec", namespace, "ip", "-o", "link", "show"], capture_output=True,
                               text=True, check=True).stdout
        run = subprocess.run(
            ["ip", "netns", "exec", namespace, sys.executable, "-m", "tests.binary.smoke", str(BINARY), str(tmp_path)],
            capture_output=True, text=True, timeout=300, cwd=REPO)
    finally:
        subprocess.run(["ip", "netns", "delete", namespace], check=False)

    assert routes.strip() == "", f"the namespace must have no route out: {routes}"
    assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"], links
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    check_smoke(result)
    assert result["failed_connections"] == [], result["failed_connections"]
