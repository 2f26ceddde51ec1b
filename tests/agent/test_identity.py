"""The agent's identity: the endpoint id from the machine id, and agent.machine_id_file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gosight.agent.identity import IdentityError, load_identity, read_machine_id

MACHINE_ID = "0123456789abcdef0123456789abcdef"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="ascii")
    return path


def test_machine_id_file_sets_endpoint_id(tmp_path):
    machine_id_file = write(tmp_path / "machine-id", MACHINE_ID.upper() + "\n")

    identity = load_identity(tmp_path / "data", "web1", machine_id_file=str(machine_id_file))

    assert identity.host_id == MACHINE_ID
    assert identity.endpoint_id == "host-0123456789ab"
    assert identity.machine_id_file == str(machine_id_file)
    assert identity.resource()["gosight.endpoint.id"] == "host-0123456789ab"


def test_agent_id_differs_per_data_dir(tmp_path):
    """Two installs on one machine id: the same endpoint id, but agent ids the server can tell apart."""
    machine_id_file = str(write(tmp_path / "machine-id", MACHINE_ID))

    first = load_identity(tmp_path / "first", machine_id_file=machine_id_file)
    second = load_identity(tmp_path / "second", machine_id_file=machine_id_file)
    first_again = load_identity(tmp_path / "first", machine_id_file=machine_id_file)

    assert first.endpoint_id == second.endpoint_id
    assert first.agent_id != second.agent_id
    assert first_again.agent_id == first.agent_id


def test_system_files_read_in_order(tmp_path):
    broken = write(tmp_path / "broken", "not a machine id")
    valid = write(tmp_path / "valid", MACHINE_ID)

    found = read_machine_id((str(tmp_path / "missing"), str(broken), str(valid)))

    assert found == (MACHINE_ID, str(valid))


def test_no_machine_id_uses_agent_id(tmp_path):
    assert read_machine_id((str(tmp_path / "missing"),)) == ("", "")


@pytest.mark.parametrize("content, message", [
    ("0123", "invalid machine id '0123'"),
    ("", "invalid machine id ''"),
    (MACHINE_ID + "00", "expected 32 hexadecimal digits"),
    ("g" * 32, "systemd-id128 new prints a new one"),
])
def test_invalid_machine_id_file(tmp_path, content, message):
    machine_id_file = write(tmp_path / "machine-id", content)

    with pytest.raises(IdentityError) as raised:
        load_identity(tmp_path / "data", machine_id_file=str(machine_id_file))

    assert str(raised.value).startswith("agent.machine_id_file: ")
    assert message in str(raised.value)


def test_missing_machine_id_file(tmp_path):
    with pytest.raises(IdentityError) as raised:
        load_identity(tmp_path / "data", machine_id_file=str(tmp_path / "nope"))

    assert f"cannot read {tmp_path / 'nope'}: No such file or directory" in str(raised.value)
    assert "leave it empty to read /etc/machine-id" in str(raised.value)


def test_agent_exits_on_bad_machine_id_file(tmp_path):
    machine_id_file = write(tmp_path / "machine-id", "cloned?")
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    result = subprocess.run([sys.executable, "-m", "gosight", "agent", "--server", "127.0.0.1:1", "--data-dir",
                             str(tmp_path / "data"), "--agent.machine_id_file", str(machine_id_file)],
                            capture_output=True, text=True, env=environment, timeout=60, check=False)

    assert result.returncode == 1, result.stderr
    assert (f"agent cannot start: agent.machine_id_file: invalid machine id 'cloned?' in {machine_id_file}: "
            "expected 32 hexadecimal digits" in result.stderr), result.stderr
    assert "Traceback" not in result.stderr
