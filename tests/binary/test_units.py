"""The systemd units in build/systemd are valid and hardened."""

import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = sorted((Path(__file__).resolve().parents[2] / "build" / "systemd").glob("*.service"))
HARDENING = ["NoNewPrivileges=yes", "ProtectSystem=strict", "DynamicUser=yes", "CapabilityBoundingSet=",
             "PrivateTmp=yes", "RestrictNamespaces=yes", "SystemCallFilter=@system-service"]


@pytest.mark.parametrize("unit", UNITS, ids=[unit.name for unit in UNITS])
def test_unit_is_hardened(unit: Path):
    text = unit.read_text()

    missing = [line for line in HARDENING if line not in text.splitlines()]

    assert missing == [], f"{unit.name} lacks {missing}"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", UNITS, ids=[unit.name for unit in UNITS])
def test_unit_passes_systemd_analyze(unit: Path, tmp_path: Path):
    # systemd-analyze checks that ExecStart exists, so point it at a stand-in executable.
    program = tmp_path / "gosight"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace("/usr/local/bin/gosight", str(program)))

    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True, text=True,
                            timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
